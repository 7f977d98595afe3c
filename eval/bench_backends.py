"""`python -m eval.bench_backends`: the embedded and the Milvus backend on the same corpus, built and searched side by
side in one run -> eval/reports/backends-<corpus>.md / .json.

Build throughput (provisions/s, chunks/s, and the embedding's chunks/s), search p50/p95 (1 query thread, warm, k=10,
hybrid; the two searching processes asked in turn), RSS of each searching process and of the Milvus server, index
sizes, and Recall@10 / MRR@10 on labelled questions: the default corpus's (``eval/data/questions.jsonl``, dev / test)
or a BEIR folder's (``qrels/<split>.tsv``; by default its held-out half, ``eval/beir.py``).  A Milvus server is
started (milvus-lite, stopped at the end) unless ``--milvus milvus://host:port`` names one.

    python -m eval.bench_backends                                   # corpus/, both backends embed everything
    python -m eval.bench_backends --corpus ../shared/bench/stard \\
        --embedded-from data/stard-index-multilingual-e5-small-policyqa  # a copy of it is re-ingested (vectors reused)
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from eval.bench_search import Workers, rss_mb
from eval.metrics import ir_metrics, latency_summary, mean_metrics

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("recall@10", "mrr@10")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _questions(corpus: Path, split: str, half: str, limit: int | None, load_queries: str | None = None):
    """(documents path, questions, qrels or None (resolved against the index; {} with ``load_queries``: no labels),
    level, label)."""
    if load_queries:  # an unlabelled corpus (lawrefbook): these questions time the search, nothing is scored
        from eval.questions import Question
        from index.request import read_query_file

        qs = [Question(qid, text, split="load") for qid, text, _ in read_query_file(load_queries)][:limit]
        return corpus, qs, {}, "provision", f"{load_queries} ({len(qs)} questions, unlabelled here: timing only)"
    if (corpus / "corpus.jsonl").is_file():
        from eval.beir import load_beir
        from eval.questions import qrels_level

        data = load_beir(corpus, split=split, halves=True)
        qs = [q for q in data.questions if half == "all" or q.split == half][:limit]
        qrels = {q.id: data.qrels[q.id] for q in qs}
        return data.corpus, qs, qrels, qrels_level(qrels), f"{split} split, {half} half ({len(qs)} questions)"
    from eval.questions import load_questions

    qs = load_questions()[:limit]
    return corpus, qs, None, "provision", f"eval/data/questions.jsonl ({len(qs)} questions, dev / test)"


def _build(name: str, docs: Path, index_dir: Path, backend: str | None) -> dict:
    from index.pipeline import ingest_paths
    from index.store.manifest import read_manifest_json

    before = _load()
    rep = ingest_paths([docs], index_dir, progress=False, backend=backend)
    b = read_manifest_json(index_dir)["build"]
    secs = rep.seconds
    return {"backend": name, "seconds": round(secs, 1), "provisions": rep.provisions, "chunks": rep.chunks,
            "encoded": rep.embedded, "provisions_per_s": round(rep.provisions / secs, 1),
            "chunks_per_s": round(rep.chunks / secs, 1), "embed_seconds": b.get("embed_seconds"),
            "embed_chunks_per_s": round(rep.embedded / b["embed_seconds"], 1) if rep.embedded else None,
            "load_before": before, "load_after": _load(), "measured": "this run"}


def _from_manifest(index_dir: Path) -> dict:
    """The build figures an existing index recorded (its own full build, at another time and load)."""
    from index.store.manifest import read_manifest_json

    b = read_manifest_json(index_dir)["build"]
    c, secs = b["counts"], b["build_seconds"]
    return {"backend": "embedded (source index, full build)", "seconds": secs, "provisions": c["provisions"],
            "chunks": c["chunks"], "encoded": c["encoded"], "provisions_per_s": round(c["provisions"] / secs, 1),
            "chunks_per_s": round(c["chunks"] / secs, 1), "embed_seconds": b["embed_seconds"],
            "embed_chunks_per_s": round(c["encoded"] / b["embed_seconds"], 1), "load_before": None,
            "load_after": None, "measured": f"manifest of {index_dir} (built {b['built_at']})"}


def _force_rebuild(index_dir: Path) -> None:
    """Make the copy's next ingest a whole rebuild (chunks, BM25, HNSW, the current relevance stage) that still takes
    every vector: its recorded corpus hash no longer matches (so no "unchanged" shortcut), its vectors and chunk keys
    are untouched (the reuse check reads those files' digests)."""
    path = index_dir / "manifest.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["build"]["corpus_sha256"] = "0" * 64
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")


def _sizes(embedded: Path, milvus_data: Path | None, chunks: int) -> dict:
    import numpy as np

    bm25 = embedded / "bm25"
    nnz = int(np.load(bm25 / "data.csc.index.npy", mmap_mode="r").shape[0])
    out = {"vectors_bytes": (embedded / "vectors.npy").stat().st_size, "faiss_bytes": (embedded / "dense.faiss").stat().st_size,
           "bm25_dir_bytes": _du(bm25), "bm25_postings": nnz, "chunks": chunks,
           "bm25_postings_per_chunk": round(nnz / chunks, 1), "bm25_bytes_per_chunk": round(_du(bm25) / chunks, 1)}
    if milvus_data is not None:
        out["milvus_data_bytes"] = _du(milvus_data)
    return out


def _figures(questions, qrels, found: dict) -> dict:
    """Per backend: latency and the metrics per split (and over all questions)."""
    out = {}
    for name, res in found.items():
        if not qrels:  # timing only (``--load-queries``)
            out[name] = {"latency_ms": {k: round(v, 1) if isinstance(v, float) else v
                                        for k, v in latency_summary(res["ms"]).items()}, "metrics": {}}
            continue
        per_q = ir_metrics({q.id: ids for q, ids in zip(questions, res["ids"])}, qrels)
        splits = {s: mean_metrics(per_q, [q.id for q in questions if q.split == s])
                  for s in sorted({q.split for q in questions})}
        splits["all"] = mean_metrics(per_q)
        out[name] = {"latency_ms": {k: round(v, 1) if isinstance(v, float) else v
                                    for k, v in latency_summary(res["ms"]).items()},
                     "metrics": {s: {m: round(v[m], 4) for m in FIGURES} for s, v in splits.items() if v}}
    e, m = found["embedded"]["ids"], found["milvus"]["ids"]
    out["identical_top10"] = sum(a[:10] == b[:10] for a, b in zip(e, m))
    out["questions"] = len(questions)
    return out


def run(args) -> dict:
    from eval.milvus_lite import MilvusLite

    corpus = Path(args.corpus).resolve()
    docs, questions, qrels, level, label = _questions(corpus, args.split, args.half, args.limit, args.load_queries)
    slug = args.name or corpus.name.lower()
    work = Path(args.workdir or tempfile.mkdtemp(prefix=f"bench-{slug}-"))
    work.mkdir(parents=True, exist_ok=True)
    result = {"corpus": str(corpus), "questions": label, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "cpus": os.cpu_count(), "model": None, "builds": [], "notes": [],
              "command": " ".join([*(f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
                                     if k.startswith("POLICYQA_") and k != "POLICYQA_REUSE_VECTORS"),
                                   "python -m eval.bench_backends", *map(shlex.quote, sys.argv[1:])])}
    server = None if args.milvus else MilvusLite(work / "milvus-server")
    try:
        spec = args.milvus.rstrip("/") if args.milvus else server.__enter__().spec
        result["milvus"] = spec + (" (milvus-lite 2.5.1, started by the benchmark)" if server else "")
        emb_dir, mil_dir = work / "embedded", work / "milvus"
        if args.embedded_from:
            src = Path(args.embedded_from)
            result["builds"].append(_from_manifest(src))
            shutil.copytree(src, emb_dir, dirs_exist_ok=False)  # the source is never written
            _force_rebuild(emb_dir)
            result["notes"].append(f"{src} copied and rebuilt whole by the current code (every vector reused, not "
                                   f"encoded); the Milvus ingest takes the same vectors (POLICYQA_REUSE_VECTORS): both "
                                   f"build figures of this run exclude embedding")
            os.environ["POLICYQA_REUSE_VECTORS"] = str(emb_dir)
        result["builds"].append(_build("embedded", docs, emb_dir, None))
        result["builds"].append(_build("milvus", docs, mil_dir, f"{spec}/bench_{slug.replace('-', '_')}"))
        if server:
            result["milvus_server_rss_mb_after_build"] = rss_mb(server.pid)
        from index.store.manifest import read_manifest_json

        result["model"] = read_manifest_json(emb_dir)["build"]["model"]["name"]
        result["sizes"] = _sizes(emb_dir, work / "milvus-server" if server else None, result["builds"][-1]["chunks"])
        load_before = _load()
        with Workers({"embedded": emb_dir, "milvus": mil_dir}, level) as workers:
            if qrels is None:
                qrels = workers.gold(questions)
            found = workers.side_by_side([q.query for q in questions], k=10)
            result["search_rss_mb"] = workers.rss()
        result["search"] = _figures(questions, qrels, found)
        result["search"]["load_before"], result["search"]["load_after"] = load_before, _load()
        if server:
            result["milvus_server_rss_mb_after_search"] = rss_mb(server.pid)
        e, m = (result["search"][n] for n in ("embedded", "milvus"))
        result["ratios_milvus_over_embedded"] = {
            "p50": round(m["latency_ms"]["p50"] / e["latency_ms"]["p50"], 2),
            "p95": round(m["latency_ms"]["p95"] / e["latency_ms"]["p95"], 2)}
        result["parity"] = {s: {f: round(m["metrics"][s][f] - e["metrics"][s][f], 4) for f in FIGURES}
                            for s in e["metrics"]}
        result["parity_within_0.02"] = (all(abs(v) <= 0.02 for s in result["parity"].values() for v in s.values())
                                        if result["parity"] else None)  # None: no labels, top-10 agreement only
    finally:
        if server:
            server.__exit__()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    from eval.bench_report import write

    paths = write(result, Path(args.out), f"backends-{slug}")
    print("\n".join(str(p) for p in paths))
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m eval.bench_backends", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=str(ROOT / "corpus"), help="a documents folder (default corpus/: the "
                    "bundled questions) or a BEIR folder (corpus.jsonl, queries, qrels)")
    ap.add_argument("--split", default="train", help="BEIR qrels split (STARD: train)")
    ap.add_argument("--half", default="heldout", choices=("heldout", "tune", "all"), help="BEIR questions used")
    ap.add_argument("--embedded-from", help="an existing embedded index of the same corpus: copied, re-ingested "
                    "(vectors reused) and its vectors given to the Milvus ingest; never written")
    ap.add_argument("--milvus", help="milvus://host:port of a running server (default: start milvus-lite)")
    ap.add_argument("--workdir", help="where the indexes and the server's data go (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the workdir")
    ap.add_argument("--limit", type=int, help="first N questions only")
    ap.add_argument("--load-queries", help="a queries file (JSON Lines, BEIR or {id, query}) that only times the "
                    "search, for a corpus without labelled questions (lawrefbook: STARD's questions)")
    ap.add_argument("--name", help="report name suffix (default: the corpus folder's name)")
    ap.add_argument("--out", default=str(ROOT / "eval" / "reports"))
    run(ap.parse_args(argv))


if __name__ == "__main__":
    main()
