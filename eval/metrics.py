"""Retrieval metrics (pytrec_eval), latency percentiles, abstention rates and the min_score calibration; pure functions."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pytrec_eval

#: Recall cut-offs reported everywhere (Recall@100 needs runs at least 100 deep).
RECALL_CUTS = (5, 10, 20, 100)
#: Metric names in report order.
METRIC_NAMES = ("hit@1",) + tuple(f"recall@{c}" for c in RECALL_CUTS) + ("mrr@10", "ndcg@10")

Run = Mapping[str, Sequence[str]]  # query id -> ranked item ids, best first
Qrels = Mapping[str, Mapping[str, int]]  # query id -> {relevant item id: grade}


def _scored(ranked: Sequence[str], depth: int | None = None) -> dict[str, float]:
    """Turn a ranked list into scores that encode the rank.

    trec_eval re-sorts by score and breaks ties by item id, so the system's own scores (ties are
    common with fused or rounded scores) would silently change the order; rank-derived scores cannot.
    Duplicates (several chunks of one provision) keep their first, best rank.
    """
    out: dict[str, float] = {}
    for item in ranked[:depth] if depth else ranked:
        if item not in out:
            out[item] = float(-len(out))
    return out


def ir_metrics(run: Run, qrels: Qrels) -> dict[str, dict[str, float]]:
    """Per-query Recall@5/10/20/100, MRR@10 and nDCG@10 for every query with at least one relevant item.

    Queries without relevant items are skipped (they are scored by ``abstention``); a query with
    relevant items but no run scores 0 everywhere (pytrec_eval alone would drop it from the mean).
    """
    judged = {q: {d: int(g) for d, g in rel.items()} for q, rel in qrels.items() if any(g > 0 for g in rel.values())}
    if not judged:
        return {}
    full = {q: _scored(run.get(q, ())) for q in judged}
    # trec_eval's recip_rank has no cut-off: MRR@10 is recip_rank on the run truncated to 10.
    top10 = {q: _scored(run.get(q, ()), 10) for q in judged}
    measures = {"recall." + ",".join(map(str, RECALL_CUTS)), "ndcg_cut.10", "success.1"}
    res_full = pytrec_eval.RelevanceEvaluator(judged, measures).evaluate({q: r for q, r in full.items() if r})
    res_top = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate({q: r for q, r in top10.items() if r})
    out: dict[str, dict[str, float]] = {}
    for q in judged:
        f, t = res_full.get(q, {}), res_top.get(q, {})
        row = {"hit@1": float(f.get("success_1", 0.0))}
        row.update({f"recall@{c}": float(f.get(f"recall_{c}", 0.0)) for c in RECALL_CUTS})
        row["mrr@10"] = float(t.get("recip_rank", 0.0))
        row["ndcg@10"] = float(f.get("ndcg_cut_10", 0.0))
        out[q] = row
    return out


def mean_metrics(per_query: Mapping[str, Mapping[str, float]], qids: Iterable[str] | None = None) -> dict[str, float]:
    """Mean of each metric over ``qids`` (default: all queries in ``per_query``); empty -> {}."""
    rows = [per_query[q] for q in (per_query if qids is None else qids) if q in per_query]
    if not rows:
        return {}
    return {m: float(np.mean([r[m] for r in rows])) for m in METRIC_NAMES}


def latency_summary(ms: Sequence[float]) -> dict[str, float]:
    """p50 / p95 / mean of latencies in milliseconds (numpy's linear interpolation)."""
    if not len(ms):
        return {"p50": 0.0, "p95": 0.0, "mean": 0.0, "n": 0}
    a = np.asarray(ms, dtype=float)
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)), "mean": float(a.mean()), "n": len(a)}


def abstention(n_hits: Mapping[str, int], answerable: Iterable[str], unanswerable: Iterable[str]) -> dict[str, float | int | None]:
    """How often the system gave no answer (``n_hits`` 0: no hit, or no hit presented as an answer, i.e. confident):
    for unanswerable questions (good) and answerable ones (bad)."""
    ans, una = list(answerable), list(unanswerable)
    abstained = lambda qs: sum(1 for q in qs if n_hits.get(q, 0) == 0)  # noqa: E731
    return {
        "ooc_questions": len(una),
        "ooc_abstain_rate": abstained(una) / len(una) if una else None,
        "answerable_questions": len(ans),
        "answerable_false_abstain_rate": abstained(ans) / len(ans) if ans else None,
    }


@dataclass(frozen=True)
class Calibration:
    """The chosen ``min_score`` and what it does on the questions it was chosen on."""

    threshold: float | None  # None: no threshold beats answering everything
    objective: float  # answerable recall@k minus false-answer rate at the threshold
    recall: float  # answerable recall@k with the threshold applied
    false_answer_rate: float  # share of unanswerable questions that still get hits
    false_abstain_rate: float  # share of answerable questions left with no hits
    at: int
    candidates: int
    curve: tuple[tuple[float | None, float, float, float], ...] = ()  # (threshold, recall, false answers, false abstains)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        d = dict(self.__dict__)
        d["curve"] = [list(c) for c in self.curve]
        return d


def calibrate_min_score(
    ranked: Mapping[str, Sequence[tuple[float, bool]]],
    n_relevant: Mapping[str, int],
    at: int = 5,
) -> Calibration:
    """Pick the score threshold that maximises answerable Recall@``at`` minus the false-answer rate.

    ``ranked[q]`` is the unthresholded run of question q as (score, is_relevant) pairs, best first;
    ``n_relevant[q]`` is 0 for an unanswerable question. A threshold t drops every hit scoring below t
    (a question whose hits all fall below t abstains). Candidates are midpoints between neighbouring
    top scores, so the threshold sits in the gap rather than on a score seen in tuning; ties in the
    objective go to the lowest threshold (answer rather than abstain when it costs nothing).
    """
    answerable = [q for q in ranked if n_relevant.get(q, 0) > 0]
    unanswerable = [q for q in ranked if n_relevant.get(q, 0) == 0]
    tops = sorted({float(r[0][0]) for r in ranked.values() if r})
    candidates: list[float | None] = [None] + [(a + b) / 2 for a, b in zip(tops, tops[1:])]
    if tops:
        candidates.append(tops[-1] + 1e-6)  # abstain on everything
    best: Calibration | None = None
    curve = []
    for t in candidates:
        kept = {q: [rel for s, rel in ranked[q] if t is None or s >= t] for q in ranked}
        rec = float(np.mean([sum(kept[q][:at]) / n_relevant[q] for q in answerable])) if answerable else 0.0
        far = float(np.mean([1.0 if kept[q] else 0.0 for q in unanswerable])) if unanswerable else 0.0
        fab = float(np.mean([0.0 if kept[q] else 1.0 for q in answerable])) if answerable else 0.0
        cal = Calibration(t, rec - far, rec, far, fab, at, len(candidates))
        curve.append((t, round(rec, 4), round(far, 4), round(fab, 4)))
        if best is None or cal.objective > best.objective + 1e-12:
            best = cal
    assert best is not None
    return replace(best, curve=tuple(curve))


def calibration_error(probs: Sequence[float], labels: Sequence[int], bins: int = 10) -> dict:
    """Expected calibration error (equal-width bins of the predicted probability, weighted by their share) and the
    reliability table (mean prediction, observed rate, count per non-empty bin)."""
    p, y = np.asarray(probs, float), np.asarray(labels, float)
    if not len(p):
        return {"ece": None, "n": 0, "bins": []}
    idx = np.minimum((p * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            conf, acc = float(p[sel].mean()), float(y[sel].mean())
            ece += sel.mean() * abs(conf - acc)
            table.append({"bin": b, "mean_p": round(conf, 4), "rate": round(acc, 4), "n": int(sel.sum())})
    return {"ece": float(ece), "n": int(len(p)), "bins": table}
