"""Shared fixtures: the fake embedder, the CLI run in-process, paths to the bundled corpus and to ../shared (skipped when
absent)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
SHARED = ROOT.parent / "shared"

from fakes import HashEmbedder  # noqa: E402


@pytest.fixture
def fake_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    return ROOT / "corpus"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent (it is only beside the repo in CI and on developer machines)")
    return SHARED


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """``policyqa ARGS`` in-process through the console-script entry point (fake embedder): (code, out, err)."""
    import index.embed
    from app import cli

    monkeypatch.setattr(index.embed, "load_embedder", lambda spec=None: HashEmbedder())

    def run(*args) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["policyqa", *map(str, args)])
        code = 0
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err, err
        return code, out, err

    return run
