"""bf16 vs fp32 passage encoding on the default corpus: speed, vector agreement and retrieval quality.

Usage: python bench/bench_precision.py [--root data/h2/precision] [--out data/h2/precision/reports]
Builds two indexes of the same documents (read once, so both hold identical chunks), one per precision, prints
embed seconds, the min/mean cosine between the two sets of vectors, then runs `policyqa eval` (the bundled
labelled questions, dev and test) on each and prints R@5 / MRR@10 side by side.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    """Build both indexes, compare vectors, evaluate both; print one table."""
    from eval.cli import eval_command
    from index import config
    from index.embed import load_embedder
    from index.ingest import load_documents
    from index.store import build_index

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=Path("data/h2/precision"))
    ap.add_argument("--out", type=Path, default=None, help="eval reports (default <root>/reports)")
    args = ap.parse_args()
    files = sorted(p for p in config.default_corpus_dir().iterdir() if p.is_file() and p.suffix != ".md")
    docs = load_documents(files, progress=False).documents
    emb = load_embedder(precision="fp32")
    results = {}
    for prec in ("fp32", "bf16"):
        emb.precision = prec
        m = build_index(docs, args.root / prec, emb, progress=False)
        vec = np.load(args.root / prec / "vectors.npy")
        res = eval_command(None, None, args.root / prec, out=args.out or args.root / "reports", name=f"default-{prec}")
        results[prec] = (m, vec, res)
    cos = (results["fp32"][1] * results["bf16"][1]).sum(1)
    print(f"\n{len(cos)} chunks; bf16 vs fp32 vectors: min cosine {cos.min():.5f}, mean {cos.mean():.6f}")
    print(f"{'precision':>9} {'embed_s':>8} {'split':>5} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} {'nDCG@10':>8}")
    for prec, (m, _, res) in results.items():
        for split, s in res["splits"].items():
            o = s["overall"]
            print(f"{prec:>9} {m.data['embed_seconds']:>8.1f} {split:>5} {o['recall@5']:>6.3f} {o['recall@10']:>6.3f} "
                  f"{o['mrr@10']:>7.3f} {o['ndcg@10']:>8.3f}")
    print(json.dumps({p: r[0].data["model"]["passage_precision"] for p, r in results.items()}))


if __name__ == "__main__":
    main()
