"""TREC run and qrels files, and a comparison table between runs with paired significance tests.

Every ``policyqa eval`` writes, beside its report, one TREC run file per run (``runs/<report>.<run>.trec``, depth
100) and the qrels it was scored against (``runs/<report>.qrels``), so that any gain can be checked with trec_eval or
with ``policyqa eval compare BASELINE.trec OTHER.trec … --qrels Q`` (this module): per-query metrics from pytrec_eval
(eval.metrics), a paired two-sided Student's t-test of each run against the first (as ``ranx.compare`` with
``stat_test="student"``) and the Fisher randomisation test (10,000 sign flips, seeded), Holm-corrected over the runs.

Why not ranx itself: it pulls in numba, ir-datasets and seaborn (~300 MB) for what pytrec_eval, which the project
already uses for every metric, plus scipy's ``ttest_rel`` give here.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from eval.metrics import METRIC_NAMES, ir_metrics, mean_metrics

Ranked = Mapping[str, Sequence[tuple[str, float]]]  # query id -> [(item id, score)], best first


def write_trec_run(path: Path, ranked: Ranked, tag: str) -> Path:
    """``qid Q0 docid rank score tag`` lines; scores are made strictly decreasing so trec_eval keeps our order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for qid, items in ranked.items():
            for rank, (item, _score) in enumerate(items, 1):
                fh.write(f"{qid} Q0 {item} {rank} {-rank} {tag}\n")  # rank-derived: ties cannot reorder
    return path


def read_trec_run(path: Path) -> dict[str, list[str]]:
    """{qid: [item ids by rank]} of a TREC run file (sorted by score desc, then as written)."""
    rows: dict[str, list[tuple[float, int, str]]] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 6:
                raise ValueError(f"{path}:{n}: expected 'qid Q0 docid rank score tag', got {line.strip()!r}")
            rows.setdefault(parts[0], []).append((-float(parts[4]), n, parts[2]))
    return {q: [item for _, _, item in sorted(r)] for q, r in rows.items()}


def write_trec_qrels(path: Path, qrels: Mapping[str, Mapping[str, int]]) -> Path:
    """``qid 0 docid relevance`` lines (questions without a relevant item are left out)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for qid, rel in qrels.items():
            for item, grade in rel.items():
                fh.write(f"{qid} 0 {item} {int(grade)}\n")
    return path


def read_qrels_any(path: Path) -> dict[str, dict[str, int]]:
    """TREC qrels (``qid 0 docid rel``) or BEIR TSV (``query-id corpus-id score``, header optional)."""
    first = next((line for line in open(path, encoding="utf-8") if line.strip()), "")
    if "\t" in first:
        from eval.questions import load_qrels

        return load_qrels(path)
    out: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise ValueError(f"{path}:{n}: expected 'qid 0 docid relevance', got {line.strip()!r}")
            out.setdefault(parts[0], {})[parts[2]] = int(float(parts[3]))
    return out


def randomization_p(a: np.ndarray, b: np.ndarray, trials: int = 10_000, seed: int = 0) -> float:
    """Two-sided Fisher randomisation test of the mean paired difference (sign flips)."""
    d = np.asarray(b, float) - np.asarray(a, float)
    if not len(d) or not np.any(d):
        return 1.0
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), size=(trials, len(d)))
    observed = abs(d.mean())
    return float((np.sum(np.abs((signs * d).mean(axis=1)) >= observed - 1e-12) + 1) / (trials + 1))


def compare_runs(qrels: Mapping[str, Mapping[str, int]], runs: Mapping[str, Mapping[str, Sequence[str]]],
                 metrics: Sequence[str] = ("mrr@10", "recall@5", "recall@10", "ndcg@10")) -> dict:
    """Means per run and, for each run after the first, paired tests against the first on the same queries."""
    from scipy.stats import ttest_rel

    names = list(runs)
    per = {name: ir_metrics(run, qrels) for name, run in runs.items()}
    qids = sorted(set.intersection(*(set(p) for p in per.values()))) if per else []
    table = {name: {"n": len(qids), **mean_metrics(per[name], qids)} for name in names}
    tests: dict[str, dict[str, dict]] = {}
    base = names[0] if names else None
    for name in names[1:]:
        tests[name] = {}
        for m in metrics:
            a = np.array([per[base][q][m] for q in qids])
            b = np.array([per[name][q][m] for q in qids])
            t = ttest_rel(b, a) if len(qids) > 1 and np.any(a != b) else None
            tests[name][m] = {"delta": float(b.mean() - a.mean()) if len(qids) else 0.0,
                              "p_student": float(t.pvalue) if t is not None and np.isfinite(t.pvalue) else 1.0,
                              "p_random": randomization_p(a, b)}
    for m in metrics:  # Holm over the runs compared with the baseline, per metric
        ps = sorted((tests[n][m]["p_student"], n) for n in tests)
        running = 0.0
        for i, (p, n) in enumerate(ps):
            running = max(running, min(1.0, p * (len(ps) - i)))
            tests[n][m]["p_holm"] = running
    return {"baseline": base, "queries": len(qids), "metrics": list(metrics), "means": table, "tests": tests}


def render_comparison(result: dict) -> str:
    """A Markdown table: mean of each metric per run, Δ against the baseline, p-values, † where p_holm < 0.05."""
    ms = result["metrics"]
    lines = [f"Paired comparison on {result['queries']} questions with a relevant item; baseline "
             f"`{result['baseline']}`. p: Student's paired t-test / Fisher randomisation; † = Holm-corrected p < 0.05.",
             "", "| run | " + " | ".join(ms) + " |", "|---|" + "---|" * len(ms)]
    for name, means in result["means"].items():
        cells = []
        for m in ms:
            cell = f"{means.get(m, 0.0):.3f}"
            t = result["tests"].get(name, {}).get(m)
            if t:
                cell += (f" ({t['delta']:+.3f}, p={t['p_student']:.3f}/{t['p_random']:.3f})"
                         + (" †" if t["p_holm"] < 0.05 else ""))
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["METRIC_NAMES", "compare_runs", "randomization_p", "read_qrels_any", "read_trec_run",
           "render_comparison", "write_trec_qrels", "write_trec_run"]
