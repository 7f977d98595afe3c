"""The backend benchmark's report: the JSON as measured and a Markdown table of it (eval/bench_backends.py)."""
from __future__ import annotations

import json
from pathlib import Path


def _mb(n: int | None) -> str:
    return "–" if n is None else f"{n / 2**20:.1f}"


def _rss(r: dict | None) -> str:
    return "–" if not r else f"{r['rss']:.0f} (peak {r['peak']:.0f})"


def markdown(r: dict) -> str:
    """The report as Markdown: builds, search, retrieval, memory, sizes, with the load of each phase."""
    s = r["search"]
    lines = [f"# Backends side by side: {Path(r['corpus']).name}", "",
             f"Corpus `{r['corpus']}`; questions: {r['questions']}; model `{r['model']}`; Milvus {r['milvus']}; "
             f"{r['cpus']} CPUs shared with other jobs; run {r['started']} – {r['finished']}. "
             f"Command: `{r['command']}`.", ""]
    lines += ["## Build", "", "| backend | seconds | provisions | chunks | encoded | provisions/s | chunks/s | "
              "embedding chunks/s | load 1-min before → after | measured |", "|---|---|---|---|---|---|---|---|---|---|"]
    for b in r["builds"]:
        load = "–" if b["load_before"] is None else f"{b['load_before'][0]} → {b['load_after'][0]}"
        lines.append(f"| {b['backend']} | {b['seconds']} | {b['provisions']} | {b['chunks']} | {b['encoded']} | "
                     f"{b['provisions_per_s']} | {b['chunks_per_s']} | {b['embed_chunks_per_s'] or '–'} | {load} | "
                     f"{b['measured']} |")
    e, m = s["embedded"], s["milvus"]
    lines += ["", "## Search (hybrid, k=10, 1 query thread, warm; the two processes asked in turn)", "",
              "| backend | p50 ms | p95 ms | mean ms | RSS of the searching process, MB |"
              + "".join(f" {sp} R@10 / MRR@10 |" for sp in e["metrics"]),
              "|---|---|---|---|---|" + "---|" * len(e["metrics"])]
    for name, f in (("embedded", e), ("milvus", m)):
        lines.append(f"| {name} | {f['latency_ms']['p50']} | {f['latency_ms']['p95']} | {f['latency_ms']['mean']} | "
                     f"{_rss(r['search_rss_mb'].get(name))} |"
                     + "".join(f" {v['recall@10']:.3f} / {v['mrr@10']:.3f} |" for v in f["metrics"].values()))
    ratio = r["ratios_milvus_over_embedded"]
    lines += ["", f"Milvus / embedded: p50 ×{ratio['p50']}, p95 ×{ratio['p95']}. Load (1-min) {s['load_before'][0]} → "
              f"{s['load_after'][0]}. Identical top-10 lists: {s['identical_top10']} of {s['questions']}. "
              f"Milvus − embedded: " + "; ".join(f"{sp} R@10 {d['recall@10']:+.4f}, MRR@10 {d['mrr@10']:+.4f}"
                                                for sp, d in r["parity"].items())
              + (f" — parity target (within 0.02): {'met' if r['parity_within_0.02'] else 'MISSED'}."
                 if r["parity_within_0.02"] is not None else "no labelled questions: timing and top-10 agreement only."),
              ""]
    z = r["sizes"]
    lines += ["## Memory and sizes", "",
              f"- Milvus server RSS (MB): after build {_rss(r.get('milvus_server_rss_mb_after_build'))}, after search "
              f"{_rss(r.get('milvus_server_rss_mb_after_search'))}; its data folder {_mb(z.get('milvus_data_bytes'))} MB.",
              f"- Embedded index: vectors.npy {_mb(z['vectors_bytes'])} MB, dense.faiss {_mb(z['faiss_bytes'])} MB, "
              f"bm25/ {_mb(z['bm25_dir_bytes'])} MB = {z['bm25_bytes_per_chunk']} B per chunk "
              f"({z['bm25_postings_per_chunk']} postings per chunk, {z['chunks']} chunks)."]
    lines += [f"- {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


def write(result: dict, out: Path, name: str) -> list[Path]:
    """``<out>/<name>.json`` and ``.md``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.json", out / f"{name}.md"]
    paths[0].write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(result), encoding="utf-8")
    return paths
