"""Benchmark: index build throughput, warm search latency (p50/p95), query-encoding latency and RSS.

Examples (keep runs short on a shared machine):
  python bench/bench_search.py --corpus stard --limit 5000 --fake-vectors
  python bench/bench_search.py --corpus lawrefbook --fake-vectors          # ~147k provisions
  python bench/bench_search.py --corpus lawrefbook --fake-vectors --real-queries   # + real query encoding
  python bench/bench_search.py --corpus stard --limit 2000 --embedder real
  nice python bench/bench_search.py --corpus lawrefbook --embedder real --index data/h2/lawrefbook --progress
      # the real model (default precision, bf16 where the CPU has it), ~150k provisions, kept for reuse
  python bench/bench_search.py --corpus stard --reuse data/beir/stard-…   # search figures of an index built earlier
  python bench/bench_search.py --corpus stard --fake-vectors --as-default-model --index data/bench/stard-fake
      # random passage vectors recorded under the default model's name, so `policyqa serve` (and
      # bench/load_test.py) runs it with real query encoding: a STARD-size index in a minute, for load tests only
Search latency is Searcher.search end to end (query encoding included); query_encode_p50_ms is the encoding alone.
CPU seconds (user+sys of this process) are printed next to wall seconds: the machine is shared, load is recorded.
  python bench/bench_search.py --dense-sweep                               # flat vs HNSW, random unit vectors
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
SHARED = ROOT.parent / "shared"

from index.store import IndexSettings, build_index  # noqa: E402
from index.types import Document, Provision, Source  # noqa: E402


class RandomVectors:
    """An embedder stand-in returning random unit vectors: measures everything but the model's encoding time."""

    name = "random-unit-vectors"
    query_prompt = "query: "
    passage_prompt = "passage: "

    def __init__(self, dim: int = 384, max_tokens: int = 512, seed: int = 0):
        self.dim, self.max_tokens = dim, max_tokens
        self._rng = np.random.default_rng(seed)

    def _unit(self, n: int) -> np.ndarray:
        v = self._rng.standard_normal((n, self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._unit(len(texts))

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        return self._unit(len(texts))

    def count_tokens(self, text: str) -> int:
        return len(text) + 4  # about one e5 token per CJK character


def stard_documents(limit: int | None) -> list[Document]:
    """STARD articles as one-provision documents (title = instrument + article number)."""
    docs = []
    with open(SHARED / "bench" / "stard" / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            text = r["text"]
            prov = Provision(f"{r['_id']}#0", r["_id"], (), text, 0, len(text))
            src = Source(path="corpus.jsonl", format="jsonl", sha256="")
            docs.append(Document(r["_id"], r["title"], text, (prov,), (src,)))
            if limit and len(docs) >= limit:
                break
    return docs


def lawrefbook_documents(limit: int | None) -> list[Document]:
    """All of ../shared/corpora/lawrefbook through the project's ingest, cut to ``limit`` provisions."""
    from index.ingest import load_documents

    docs = list(load_documents([SHARED / "corpora" / "lawrefbook"], progress=True).documents)
    if not limit:
        return docs
    out, n = [], 0
    for d in docs:
        if n >= limit:
            break
        out.append(d)
        n += len(d.provisions)
    return out


def queries(n: int) -> list[str]:
    """Real lay questions from STARD (their wording is what users type)."""
    with open(SHARED / "bench" / "stard" / "queries-train.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for _, line in zip(range(n), fh)]


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) in MB."""
    current = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            current = int(line.split()[1]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pct(values: list[float], q: float) -> float:
    """Percentile in milliseconds."""
    return float(np.percentile(np.asarray(values) * 1000, q))


def cpu_s() -> float:
    """User + system CPU seconds of this process so far."""
    t = os.times()
    return t.user + t.system


def bench(args) -> dict:
    """Build the index, then time searches; returns the figures."""
    from index.search import Searcher

    result = {"loadavg_start": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
    t0, c0 = time.perf_counter(), cpu_s()
    docs = stard_documents(args.limit) if args.corpus == "stard" else lawrefbook_documents(args.limit)
    load_s, load_cpu = time.perf_counter() - t0, cpu_s() - c0
    n_prov = sum(len(d.provisions) for d in docs)
    if args.embedder == "real":
        from index.embed import load_embedder

        embedder = load_embedder(None)
    else:
        embedder = RandomVectors()
        if args.as_default_model:  # servable with the real query encoder; passage vectors stay random
            from index import config

            embedder.name = config.DEFAULT_MODEL
        if args.real_queries:  # random passages, but queries encoded by the real model's query path (no torch)
            from index.embed import load_embedder

            embedder.encode_queries = load_embedder(None).encode_queries
    settings = IndexSettings.of(hnsw_threshold=args.hnsw_threshold) if args.hnsw_threshold else IndexSettings()
    out = Path(args.index) if args.index else Path(tempfile.mkdtemp(prefix="bench-ix-")) / "ix"
    t0, c0 = time.perf_counter(), cpu_s()
    manifest = build_index(docs, out, embedder, settings, progress=args.progress)
    build_s, build_cpu = time.perf_counter() - t0, cpu_s() - c0
    result["loadavg_after_build"] = [round(x, 2) for x in os.getloadavg()]
    t0 = time.perf_counter()
    searcher = Searcher.load(out, None if args.embedder == "real" else embedder)  # as the CLI does
    if args.embedder == "real":
        del embedder  # the build's torch model: its memory is not the search process's
        import gc

        gc.collect()
    searcher_load_s = time.perf_counter() - t0
    embedder = searcher.embedder
    result.update({
        "corpus": args.corpus, "embedder": embedder.name,
        "precision": manifest.data["model"].get("passage_precision"), "documents": len(docs), "provisions": n_prov,
        "chunks": manifest.counts["chunks"], "dense": manifest.data["dense"]["type"],
        "read_parse_s": round(load_s, 1), "read_parse_cpu_s": round(load_cpu, 1),
        "build_s": round(build_s, 1), "build_cpu_s": round(build_cpu, 1),
        "build_provisions_per_s": round(n_prov / build_s, 1),
        "end_to_end_provisions_per_s": round(n_prov / (build_s + load_s), 1),
        "embed_s": manifest.data["embed_seconds"], "searcher_load_s": round(searcher_load_s, 2),
    })
    result.update(time_searches(searcher, queries(args.queries), args.modes))
    result["rss_mb"], result["peak_rss_mb"] = (round(x) for x in rss_mb())
    t0 = time.perf_counter()
    again = build_index(docs, out, embedder, settings, progress=False)
    result["reingest_unchanged_s"] = round(time.perf_counter() - t0, 2)
    result["reingest_embedded"] = again.counts["embedded"]
    result["reingest_with_read_parse_s"] = round(result["reingest_unchanged_s"] + load_s, 1)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    if not args.index:
        shutil.rmtree(out.parent, ignore_errors=True)
    return result


def clear_query_cache(embedder) -> None:
    """Forget cached query vectors, so every timed search encodes its query."""
    owner = getattr(embedder.encode_queries, "__self__", embedder)  # --real-queries binds the real embedder's method
    getattr(owner, "_qcache", {}).clear()


def time_searches(searcher, qs: list[str], modes: list[str]) -> dict:
    """Warm p50/p95 (ms) per mode of Searcher.search (query encoding included), and the encoding alone."""
    for q in qs[-10:]:  # warm-up: page cache, OpenCC/jieba tables, FAISS
        searcher.search(q, k=10)
    out = {}
    for mode in modes:
        clear_query_cache(searcher.embedder)
        times = []
        for q in qs:
            t = time.perf_counter()
            searcher.search(q, k=10, mode=mode)
            times.append(time.perf_counter() - t)
        out[f"{mode}_p50_ms"], out[f"{mode}_p95_ms"] = round(pct(times, 50), 2), round(pct(times, 95), 2)
    enc = []
    clear_query_cache(searcher.embedder)
    for q in qs:
        t = time.perf_counter()
        searcher.embedder.encode_queries([q])
        enc.append(time.perf_counter() - t)
    out["query_encode_p50_ms"], out["query_encode_p95_ms"] = round(pct(enc, 50), 2), round(pct(enc, 95), 2)
    return out


def bench_reuse(args) -> dict:
    """Search figures of an index built earlier (e.g. by `policyqa eval beir`), in a fresh search-only process.

    The unchanged re-ingest is timed only when this code reads the corpus into the very documents the index holds
    (same corpus hash and build fingerprint): otherwise build_index would re-embed everything, so it is skipped.
    """
    from index.ingest import load_documents
    from index.search import Searcher
    from index.store import IndexSettings, build_fingerprint, corpus_hash, read_manifest

    ix = Path(args.reuse)
    manifest = read_manifest(ix).build
    result = {"loadavg_start": [round(x, 2) for x in os.getloadavg()], "index": str(ix),
              "provisions": manifest.counts["provisions"], "chunks": manifest.counts["chunks"],
              "precision": manifest.model.passage_precision, "dense": manifest.dense["type"],
              "manifest_build_s": manifest.build_seconds, "manifest_embed_s": manifest.embed_seconds}
    if manifest.build_seconds:
        result["manifest_build_provisions_per_s"] = round(manifest.counts["provisions"] / manifest.build_seconds, 1)
    embedder = None
    if manifest.model.name == RandomVectors.name:  # built with --fake-vectors: queries by the real model
        from index.embed import load_embedder

        embedder = RandomVectors()
        embedder.encode_queries = load_embedder(None).encode_queries
    t0 = time.perf_counter()
    searcher = Searcher.load(ix, embedder)
    result["searcher_load_s"] = round(time.perf_counter() - t0, 2)
    result.update(time_searches(searcher, queries(args.queries), args.modes))
    result["rss_mb"], result["peak_rss_mb"] = (round(x) for x in rss_mb())
    corpus = SHARED / "bench" / "stard" / "corpus.jsonl" if args.corpus == "stard" else SHARED / "corpora" / "lawrefbook"
    t0 = time.perf_counter()
    docs = list(load_documents([corpus], progress=False).documents)
    read_s = time.perf_counter() - t0
    if args.corpus == "stard" and embedder is not None:
        docs = stard_documents(None)  # how the bench itself built it
    settings = IndexSettings(manifest.settings, searcher.settings)
    max_tokens = min(manifest.settings.chunk_max_tokens, searcher.embedder.max_tokens)
    same = (corpus_hash(docs) == manifest.corpus_sha256
            and build_fingerprint(searcher.embedder, manifest.settings, max_tokens) == manifest.fingerprint)
    if same:
        from index.store import build_index

        t0, c0 = time.perf_counter(), cpu_s()
        again = build_index(docs, ix, searcher.embedder, settings, progress=False)
        result["reingest_unchanged_s"] = round(time.perf_counter() - t0, 2)
        result["reingest_unchanged_cpu_s"] = round(cpu_s() - c0, 2)
        result["reingest_embedded"] = again.counts["embedded"]
        result["reingest_with_read_parse_s"] = round(result["reingest_unchanged_s"] + read_s, 1)
    else:
        result["reingest_unchanged_s"] = "skipped: the corpus reads differently now (code changed since the build)"
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return result


def dense_sweep(sizes: list[int], dim: int = 384, n_queries: int = 50) -> list[dict]:
    """Flat vs HNSW (M=32, efC=80, efSearch=128) latency for k=100 and HNSW recall@100 vs exact."""
    from index.dense import DenseIndex

    rng = np.random.default_rng(0)
    rows = []
    for n in sizes:
        x = rng.standard_normal((n, dim)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        # queries near stored vectors (uniformly random 384-d queries are all equally far from everything)
        q = x[rng.integers(0, n, n_queries)] + 0.1 * rng.standard_normal((n_queries, dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        flat = DenseIndex.build(x, hnsw_threshold=n + 1)
        t = time.perf_counter()
        hnsw = DenseIndex.build(x, hnsw_threshold=0)
        build = time.perf_counter() - t
        tf, th, rec = [], [], []
        for v in q:
            t = time.perf_counter()
            exact = flat.search(v, 100)[1]
            tf.append(time.perf_counter() - t)
            t = time.perf_counter()
            approx = hnsw.search(v, 100)[1]
            th.append(time.perf_counter() - t)
            rec.append(len(set(exact) & set(approx)) / 100)
        rows.append({"n": n, "flat_p50_ms": round(pct(tf, 50), 2), "hnsw_p50_ms": round(pct(th, 50), 2),
                     "hnsw_build_s": round(build, 1), "hnsw_recall@100": round(float(np.mean(rec)), 3)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    """Command line entry."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", choices=["stard", "lawrefbook"], default="stard")
    p.add_argument("--limit", type=int, default=None, help="at most this many provisions")
    p.add_argument("--fake-vectors", action="store_true", help="random unit vectors instead of encoding")
    p.add_argument("--embedder", choices=["real", "fake"], default=None)
    p.add_argument("--real-queries", action="store_true",
                   help="with --fake-vectors: encode queries with the real model (latency incl. encoding)")
    p.add_argument("--as-default-model", action="store_true",
                   help="with --fake-vectors: record the index under the default model's name, so `policyqa serve` "
                        "loads it with the real query encoder (random passages: load tests only, never for quality)")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--modes", nargs="+", default=["hybrid", "bm25", "dense"])
    p.add_argument("--hnsw-threshold", type=int, default=None)
    p.add_argument("--index", default=None, help="build here and keep it (default: a temp dir, removed)")
    p.add_argument("--reuse", default=None, help="an index built earlier of the same corpus: time searches only")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--dense-sweep", nargs="*", type=int, default=None, metavar="N")
    args = p.parse_args()
    if args.dense_sweep is not None:
        dense_sweep(args.dense_sweep or [5_000, 20_000, 50_000, 147_000])
        return
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} is absent: the benchmark corpora live there")
    args.embedder = args.embedder or ("fake" if args.fake_vectors else "real")
    print(json.dumps(bench_reuse(args) if args.reuse else bench(args), ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
