"""Ray build on a local 2-worker cluster against the single-process build, same machine, same corpora, one run.

Usage (one command; the real model needs its folder, e.g. POLICYQA_MODEL_DIR=/work/main/data/models):

    python eval/bench_ray.py [--runs 2] [--policies 30 100] [--out eval/reports/bench-ray.md]

Starts a Ray cluster on this machine (tests/ray_cluster.py: a head that runs nothing and two worker nodes of one CPU
each), then for each corpus — the default ``corpus/`` and the first ``--policies`` documents of
../shared/corpora/policies.jsonl (skipped when absent) — runs ``policyqa ingest`` into a fresh folder, in turn without
and with ``--ray`` (A B A B …, so drift on a shared machine hits both), ``--runs`` times each.  Reports the median
wall seconds of the whole command, the manifest's seconds to the end of embedding, chunks per second, and the
smallest cosine between the two builds' vectors (same chunk ids required).  The cluster is shut down at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
POLICIES = ROOT.parent / "shared" / "corpora" / "policies.jsonl"


def _ingest(src: Path, ix: Path, ray: str | None) -> float:
    """Wall seconds of one ``policyqa ingest`` (a fresh process, as a user runs it)."""
    cmd = [sys.executable, "-m", "app.cli", "ingest", str(src), "--index", str(ix), "--no-progress"]
    cmd += ["--ray", ray] if ray else []
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"ingest failed ({' '.join(cmd)}):\n{res.stderr[-2000:]}")
    return seconds


def _built(ix: Path) -> tuple[list[str], np.ndarray, dict]:
    manifest = json.loads((ix / "manifest.json").read_text(encoding="utf-8"))
    ids = [json.loads(line)["id"] for line in (ix / "chunks.jsonl").read_text(encoding="utf-8").splitlines()]
    return ids, np.load(ix / "vectors.npy"), manifest["build"]


def bench(name: str, src: Path, address: str, runs: int, work: Path) -> dict:
    """Interleaved single / Ray ingests of ``src``; medians and the agreement of the last pair."""
    times: dict[str, list[float]] = {"single": [], "ray": []}
    embed: dict[str, list[float]] = {"single": [], "ray": []}
    for run in range(runs):
        for mode in ("single", "ray"):
            ix = work / f"{name}-{mode}-{run}"
            times[mode].append(_ingest(src, ix, address if mode == "ray" else None))
            embed[mode].append(_built(ix)[2]["embed_seconds"])
            print(f"{name} {mode} run {run + 1}: {times[mode][-1]:.1f} s", flush=True)
    ids_a, va, build = _built(work / f"{name}-single-{runs - 1}")
    ids_b, vb, build_ray = _built(work / f"{name}-ray-{runs - 1}")
    if ids_a != ids_b:
        raise SystemExit(f"{name}: the Ray build's chunk ids differ from the single-process build's")
    chunks = build["counts"]["chunks"]
    med = {m: statistics.median(v) for m, v in times.items()}
    return {"corpus": name, "documents": build["counts"]["documents"], "chunks": chunks,
            "single_wall": med["single"], "ray_wall": med["ray"],
            "single_embed": statistics.median(embed["single"]), "ray_embed": statistics.median(embed["ray"]),
            "single_rate": chunks / med["single"], "ray_rate": chunks / med["ray"],
            "min_cos": float(np.min(np.sum(va * vb, axis=1))), "ray": build_ray.get("embedded_by"),
            "runs": {m: [round(t, 1) for t in v] for m, v in times.items()}, "model": build["model"]["name"],
            "precision": build["model"].get("passage_precision")}


def table(rows: list[dict], load: tuple[float, float], runs: int) -> str:
    """The report: one line per corpus, then how it was measured."""
    out = ["# Ray build (local 2-worker cluster) vs single-process build", "",
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load average "
           f"{load[0]:.1f} before / {load[1]:.1f} after; median of {runs} interleaved runs each (after one "
           f"uncounted Ray ingest on the fresh cluster); model "
           f"{rows[0]['model']} ({rows[0]['precision']}).", "",
           "| corpus | docs | chunks | single: wall s | Ray: wall s | single: to end of embedding s | "
           "Ray: to end of embedding s | single chunks/s | Ray chunks/s | Ray / single wall | min cosine | "
           "Ray batches / nodes used |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        out.append(f"| {r['corpus']} | {r['documents']} | {r['chunks']} | {r['single_wall']:.1f} | "
                   f"{r['ray_wall']:.1f} | {r['single_embed']:.1f} | {r['ray_embed']:.1f} | {r['single_rate']:.1f} | "
                   f"{r['ray_rate']:.1f} | {r['ray_wall'] / r['single_wall']:.2f} | {r['min_cos']:.6f} | "
                   f"{(r['ray'] or {}).get('batches')} / {(r['ray'] or {}).get('nodes_used')} |")
    ray = rows[0]["ray"] or {}
    out += ["", f"Ray: {ray.get('nodes')} nodes (head with 0 CPUs + 2 workers of 1 CPU), {ray.get('actors')} actors "
            f"(one model load each, per build), batches of {ray.get('batch_size')} chunks ('nodes used': worker nodes whose actor returned "
            "batches; an actor that is ready first takes the batches while the other still loads the model). Wall = the whole `policyqa ingest` process (start-up, reading, "
            "parsing, embedding, BM25, writing); 'to end of embedding' = the manifest's embed_seconds (build start "
            "to the last vector, chunking and the actors' model loads included). Runs: "
            + "; ".join(f"{r['corpus']} {r['runs']}" for r in rows) + ".",
            "", "Command: `POLICYQA_MODEL_DIR=… python eval/bench_ray.py --runs "
            f"{runs} --policies {' '.join(r['corpus'].rsplit(' ', 1)[1] for r in rows[1:])}`."]
    return "\n".join(out) + "\n"


def main() -> None:
    """Start the cluster, bench each corpus, write the table."""
    from ray_cluster import local_cluster

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1, help="uncounted Ray ingests of corpus/ first")
    ap.add_argument("--policies", type=int, nargs="*", default=[30],
                    help="corpora of the first N documents of policies.jsonl (none: skip)")
    ap.add_argument("--out", type=Path, default=ROOT / "eval" / "reports" / "bench-ray.md")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        work = Path(tmp)
        corpora = [("corpus/ (default)", ROOT / "corpus")]
        for n in args.policies if POLICIES.is_file() else []:
            sub = work / f"policies-{n}" / f"policies-{n}.jsonl"
            sub.parent.mkdir()
            with open(POLICIES, encoding="utf-8") as fh:
                sub.write_text("".join(line for _, line in zip(range(n), fh)), encoding="utf-8")
            corpora.append((f"policies.jsonl first {n}", sub.parent))
        with local_cluster(workers=2) as address:
            for _ in range(args.warmup):  # a fresh cluster starts its worker processes on the first dataset
                _ingest(ROOT / "corpus", work / "warmup", address)
            rows = [bench(f"c{i}", src, address, args.runs, work) | {"corpus": name}
                    for i, (name, src) in enumerate(corpora)]
    report = table(rows, (load0, os.getloadavg()[0]), args.runs)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(rows, ensure_ascii=False, indent=1, default=dict),
                                             encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
