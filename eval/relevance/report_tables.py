"""Markdown tables for REPORT.md from data/relevance/{ranker,results,latency,eval-*}.json.

    .venv/bin/python -m eval.relevance.report_tables
"""
from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "data" / "relevance"


def _j(name):
    p = OUT / name
    return json.loads(p.read_text()) if p.exists() else None


def main() -> None:
    res, lat, rk = _j("results.json"), _j("latency.json"), _j("ranker.json")
    if res:
        print("| scorer | policies dev MRR@10 | Hit@1 | R@5 | STARD B MRR@10 | Hit@1 | R@5 | ECE pol (iso/platt) |"
              " ECE STARD (iso/platt) | ooc false-confident @ zero-miss (iso) | @ 5 % miss (iso) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, e in res["scorers"].items():
            p, s = e["ranking"]["policies_dev"], e["ranking"]["stard_b"]
            ei, ep = e["isotonic"]["ece"], e["platt"]["ece"]
            z, m = e["isotonic"]["zero_miss"], e["isotonic"]["miss_5pct"]
            print(f"| {name} | {p['MRR@10']} | {p['Hit@1']} | {p['R@5']} | {s['MRR@10']} | {s['Hit@1']} | {s['R@5']} "
                  f"| {ei['policies_dev']['ece']} / {ep['policies_dev']['ece']} "
                  f"| {ei['stard_b']['ece']} / {ep['stard_b']['ece']} "
                  f"| {z['ooc_false_confident']}/{z['ooc']} (t={z['threshold']}) "
                  f"| {m['ooc_false_confident']}/{m['ooc']}, {m['answerable_without_confident']} ans. missed (t={m['threshold']}) |")
        print()
        print("shipped:", res.get("shipped"), "winner:", res.get("winner"), "combo w:", res.get("combo_w"))
        print("calibration:", {k: v for k, v in res["calibration"].items() if k not in ("x", "y")})
    if rk:
        print("\nLightGBM grid (dev):")
        for g in rk["grid"]:
            print(f"- {g['kind']} {g['rounds']}: policies {g['policies_dev']['MRR@10']}, STARD B {g['stard_b']['MRR@10']}")
        print("STARD 2-fold CV:", rk.get("stard_cv"))
    if lat:
        print("\nlatency (ms, 1 thread):", json.dumps(lat, indent=1))
    for split in ("dev", "test"):
        e = _j(f"eval-{split}.json")
        if e:
            print(f"\neval-{split}:", json.dumps(e, indent=1))


if __name__ == "__main__":
    main()
