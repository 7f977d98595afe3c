"""What ranking BM25 with Milvus's own BM25 function (``text_bm25``, jieba analyzer) instead of the stored bm25s
weights (``lex``) would change: the bundled questions on one Milvus index, both ways.

    python bench/bench_milvus_bm25.py --index milvus://127.0.0.1:19530/policyqa [--out /tmp/bm25-report.json]

Only the BM25 scores change (candidates and the score each candidate carries into fusion and the relevance stage);
coverage and IDF features still come from the index's own vocabulary.  An experiment, not a product path.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from index.milvus import filter_expr
from index.milvus_backend import MAX_TOPK, MilvusBackend


class MilvusBM25Scores:
    """One query's BM25 from Milvus's BM25 function: the raw text is analysed and scored by the server."""

    def __init__(self, backend: MilvusBackend, text: str, concepts, scope):
        self.b, self.scope = backend, scope
        self.text = " ".join([text] + [w for words in concepts for w in words])  # translated words appended

    def _search(self, limit: int, expr: str) -> dict[int, float]:
        res = self.b._search([self.text], "text_bm25", min(limit, MAX_TOPK), expr, {"metric_type": "BM25"})
        return {int(r["id"]): float(r["distance"]) for r in res if float(r["distance"]) > 0}

    def top(self, n: int) -> np.ndarray:
        found = self._search(n, filter_expr(self.scope))
        return np.asarray(sorted(found, key=lambda r: (-found[r], r)), np.int64)

    def at(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        if not len(rows):
            return np.zeros(0, np.float32)
        got = self._search(len(rows), filter_expr(self.scope, rows))
        return np.asarray([got.get(int(r), 0.0) for r in rows], np.float32)


class MilvusBM25Backend(MilvusBackend):
    """The Milvus backend with BM25 from ``text_bm25``."""

    def lexical(self, text, concepts, scope):
        return MilvusBM25Scores(self, text, concepts, scope)


def main() -> None:
    from eval.questions import load_questions
    from eval.run import evaluate
    from index.search import Searcher

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True, help="a Milvus index: milvus://host:port/collection or its folder")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    searcher = Searcher.load(args.index)
    questions = load_questions()
    b = searcher._backend
    variants = {"lex (bm25s weights)": searcher}
    other = Searcher.__new__(Searcher)
    other.__dict__.update(searcher.__dict__)
    other._backend = MilvusBM25Backend(b.client, b.target, b.size, b.lexicon, b.ef_search)
    variants["text_bm25 (Milvus BM25, jieba analyzer)"] = other
    out = {}
    for name, s in variants.items():
        for mode in ("hybrid", "bm25"):
            rep = evaluate(s, questions, k=10, mode=mode)
            out[f"{name} {mode}"] = {split: {m: round(v["overall"][m], 3) for m in ("recall@10", "mrr@10")}
                                     | {k: v["abstention"].get(k) for k in ("ooc_abstain_rate",
                                                                           "answerable_false_abstain_rate")}
                                     for split, v in rep["splits"].items()}
            print(name, mode, json.dumps(out[f"{name} {mode}"], ensure_ascii=False))
    if args.out:
        args.out.write_text(json.dumps(out, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
