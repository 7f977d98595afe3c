"""Parameter sweeps behind eval/reports/QUALITY.md (what was tried; the defaults stay where these show no gain).

    python -m eval.sweep fusion                       # default corpus, real model: fusion variants on dev and test
    python -m eval.sweep bm25 /work/shared/bench/stard  # STARD, BM25 only: k1/b, stopwords, title, dictionary
    python -m eval.sweep prf                          # default corpus: dense pseudo-relevance feedback (Rocchio)

``fusion`` builds (or reuses) the default-corpus index under <data>/eval/<model>/context, as ``python -m eval.cli``.
``bm25`` needs the benchmark's index (built by ``python -m eval.cli beir DIR --embedder fake`` or `policyqa eval beir`)
for its chunks and dictionary, and re-indexes them with bm25s for each variant (≈1.5 min per variant on 2 cores).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

#: Lay-question words added to the stopwords in the ``lay-stopwords`` variant.
LAY_STOPWORDS = ("能否 能不能 是否 可否 怎么办 怎么样 应该 需要 情况 什么样 多少 多久 哪里 谁 会不会 要不要 有没有 可不可以 "
                 "该怎么 咋 咋办 如果 那么 因为 所以 但是 但 现在 已经 自己 别人 一下 想 想要 请 一般").split()


def _fmt(m: dict) -> str:
    return " ".join(f"{s}: R@10 {v['recall@10']:.3f} MRR@10 {v['mrr@10']:.3f} R@100 {v['recall@100']:.3f}"
                    for s, v in m.items())


def sweep_bm25(directory: Path, index_dir: Path | None) -> list[dict]:
    """BM25-only STARD figures per variant, on the tune and heldout halves (doc level, first 100 documents)."""
    import bm25s

    from eval.beir import file_hash, load_beir
    from eval.metrics import ir_metrics, mean_metrics
    from index.tokenize import ChineseTokenizer

    data = load_beir(directory, halves=True)
    if index_dir is None:
        from index import config

        found = sorted((config.data_dir() / "beir").glob(f"{data.corpus.parent.name}-{file_hash(data.corpus)[:16]}-*"))
        found = [p for p in found if (p / "manifest.json").is_file()]
        if not found:
            raise FileNotFoundError("no index of this benchmark under <data>/beir: run `python -m eval.cli beir DIR --embedder fake`")
        index_dir = found[0]
    chunks = [json.loads(line) for line in open(Path(index_dir) / "chunks.jsonl", encoding="utf-8")]
    doc_of = np.array([c["doc_id"] for c in chunks])
    with_title = [c["embed_text"] for c in chunks]  # title + path + text, what lexical_context indexes
    plain = [c["text"] for c in chunks]
    base = ChineseTokenizer.load(Path(index_dir) / "bm25")
    halves = {s: [q.id for q in data.questions if q.split == s] for s in ("tune", "heldout")}

    def run(tok, k1=1.2, b=0.75, texts=with_title) -> dict:
        model = bm25s.BM25(k1=k1, b=b, method="lucene")
        model.index([tok.tokenize(t) for t in texts], show_progress=False)
        ranked = {}
        for q in data.questions:
            ids = model.get_tokens_ids(tok.tokenize(q.query))
            scores = model.get_scores_from_ids(ids) if ids else np.zeros(len(texts))
            docs: list[str] = []
            for r in np.argsort(-scores)[:300]:
                if scores[r] <= 0 or len(docs) == 100:
                    break
                if doc_of[r] not in docs:
                    docs.append(doc_of[r])
            ranked[q.id] = tuple(docs)
        per_q = ir_metrics(ranked, data.qrels)
        return {s: mean_metrics(per_q, ids) for s, ids in halves.items()}

    lay = ChineseTokenizer(user_words=base.user_words, stopwords=set(base.stopwords) | set(LAY_STOPWORDS),
                           with_policy_terms=False)
    bare = ChineseTokenizer(user_words=[], stopwords=base.stopwords, with_policy_terms=False)
    variants = [("default k1=1.2 b=0.75", lambda: run(base))]
    variants += [(f"k1={k1} b={b}", lambda k1=k1, b=b: run(base, k1, b))
                 for k1, b in ((0.9, 0.4), (1.2, 0.5), (1.5, 0.75), (0.6, 0.3), (2.0, 0.75))]
    variants += [("lay-question stopwords", lambda: run(lay)), ("no title in BM25 text", lambda: run(base, texts=plain)),
                 ("no user dictionary", lambda: run(bare))]
    rows = []
    for name, fn in variants:
        m = fn()
        rows.append({"variant": name, **m})
        print(f"{name:>24}  {_fmt(m)}", flush=True)
    return rows


def _default_searcher():
    from eval.cli import _slug
    from eval.questions import DEFAULT_QUESTIONS, load_questions
    from eval.run import build_variant_index
    from index import config
    from index.embed import load_embedder
    from index.ingest import load_documents
    from index.search import Searcher

    embedder = load_embedder()
    files = sorted(p for p in config.default_corpus_dir().iterdir() if p.is_file() and p.suffix != ".md")
    documents = load_documents(files, progress=False).documents
    root = config.data_dir() / "eval" / _slug(embedder.name)
    return Searcher.load(build_variant_index(documents, root / "context", embedder), embedder), \
        load_questions(DEFAULT_QUESTIONS)


def _print(name: str, r: dict) -> dict:
    m = {s: r["splits"][s]["overall"] for s in ("dev", "test")}
    print(name, " ".join(f"{s}: R@5 {v['recall@5']:.3f} MRR@10 {v['mrr@10']:.3f}" for s, v in m.items()), flush=True)
    return m


def sweep_prf() -> list[dict]:
    """Hybrid figures with the dense query moved towards its top-k passages: q' = norm(q + w * mean(top k))."""
    import re

    from eval.run import evaluate

    searcher, questions = _default_searcher()
    vectors = searcher._ix.vectors
    cjk = re.compile("[\u3400-\u9fff]")
    rows = []
    for k, w, english_only in ((0, 0.0, False), (3, 0.5, False), (3, 1.0, False), (5, 0.5, False), (3, 0.5, True),
                               (3, 1.0, True), (5, 1.0, True), (1, 0.5, True)):
        base = searcher.query_vector
        variant = searcher.with_settings(abstain=False)

        def prf(text, k=k, w=w, english_only=english_only, base=base):
            v = base(text)
            if k == 0 or (english_only and cjk.search(text)):
                return v
            top = np.argsort(-(vectors @ v))[:k]
            moved = v + w * vectors[top].mean(0)
            return (moved / np.linalg.norm(moved)).astype(np.float32)

        variant._query_vectors = lambda text, prf=prf, base=searcher._query_vectors: (base(text)[0], prf(text))
        name = f"prf k={k} w={w} {'English only' if english_only else 'all queries'}"
        rows.append({"variant": name, **_print(name, evaluate(variant, questions, mode="hybrid", depth=20))})
    return rows


def sweep_fusion() -> list[dict]:
    """Hybrid figures of fusion variants on the default questions (dev picks; test is shown, not used)."""
    from eval.run import evaluate

    searcher, questions = _default_searcher()
    grid = [dict(fusion="weighted", w_dense=w, w_bm25=round(1 - w, 2), bm25_half=h)
            for w in (0.5, 0.6, 0.7, 0.8) for h in (5.0, 10.0, 20.0)]
    grid += [dict(fusion="rrf", w_dense=w, w_bm25=1.0, rrf_k=k) for w in (0.5, 1.0, 1.5, 2.0) for k in (10.0, 30.0, 60.0)]
    return [{"settings": g, **_print(json.dumps(g), evaluate(searcher.with_settings(**g), questions, mode="hybrid",
                                                               depth=20))} for g in grid]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("fusion", "bm25", "prf"))
    ap.add_argument("directory", type=Path, nargs="?", help="bm25: the BEIR folder")
    ap.add_argument("--index", type=Path, default=None, help="bm25: the benchmark's built index")
    args = ap.parse_args(argv)
    if args.what == "bm25":
        if args.directory is None:
            ap.error("bm25 needs the BEIR folder")
        sweep_bm25(args.directory, args.index)
    elif args.what == "prf":
        sweep_prf()
    else:
        sweep_fusion()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
