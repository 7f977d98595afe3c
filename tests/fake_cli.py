"""Test-only launcher: the real `policyqa` CLI (app.cli.main) with the offline fake embedder (tests/fakes.py).

    python tests/fake_cli.py ingest corpus/ --index /tmp/ix      # same arguments as `policyqa`

Every embedder the CLI would load (ingest, search, serve) is the hashed n-gram fake, so subprocess tests
(kill -9, locks, corruption, bad input, load) run the shipped entry point in seconds without the model.  No patching:
the fake is a registered embedder (index/fake.py), chosen the way a user chooses a model, ``POLICYQA_MODEL``.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))


def main() -> None:
    import os

    os.environ["POLICYQA_MODEL"] = "fake-hash-ngrams"  # index/embed.py's registry builds index.fake.HashEmbedder
    from app.cli import main as cli_main

    sys.argv[0] = "policyqa"
    cli_main()


if __name__ == "__main__":
    main()
