"""Ingest benchmark: documents, provisions, parse rate (share of provisions with a heading path) and throughput.

Run from the project root: ``python bench/bench_ingest.py [PATH ...]``; without paths it measures the default
corpus, ../shared/corpora/lawrefbook and ../shared/corpora/policies.jsonl (skipping what is absent).
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from index.config import default_corpus_dir  # noqa: E402
from index.ingest import load_documents  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora"


def measure(label: str, paths: list[Path]) -> dict:
    """Ingest ``paths`` once and return the figures of one benchmark row."""
    result = load_documents(paths, progress=False)
    provisions = [p for d in result.documents for p in d.provisions]
    with_path = sum(1 for p in provisions if p.path)
    merged = sum(1 for d in result.documents if len(d.sources) > 1)
    meta = Counter(name for d in result.documents for name in ("doc_number", "issuer", "date", "region", "url")
                   if getattr(d, name))
    secs = max(result.seconds, 1e-9)
    return {
        "corpus": label, "files": result.files, "documents": len(result.documents), "merged": merged,
        "errors": len(result.errors), "provisions": len(provisions),
        "parse_rate": round(with_path / len(provisions), 4) if provisions else 0.0,
        "docs_per_s": round(len(result.documents) / secs, 1), "mb_per_s": round(result.bytes / 1e6 / secs, 2),
        "seconds": round(result.seconds, 2), "meta": dict(meta),
    }


def main(argv: list[str] | None = None) -> None:
    """Print one line per corpus."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args(argv)
    targets = [(str(p), [p]) for p in args.paths] or [
        ("seeds (corpus/)", [default_corpus_dir()]),
        ("lawrefbook", [SHARED / "lawrefbook"]),
        ("policies.jsonl", [SHARED / "policies.jsonl"]),
    ]
    for label, paths in targets:
        if not all(p.exists() for p in paths):
            print(f"{label}: absent, skipped")
            continue
        row = measure(label, paths)
        print(" | ".join(f"{k}={v}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
