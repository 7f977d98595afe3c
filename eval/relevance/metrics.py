"""Ranking, calibration and abstention figures over items whose candidates carry one score each."""
from __future__ import annotations

import numpy as np


def ranked_keys(item, scores: np.ndarray) -> list[str]:
    """The item's candidates reordered by ``scores`` (desc, ties by hybrid rank), at the qrels level, deduplicated."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    out, seen = [], set()
    for i in order:
        k = item.key(item.hits[i])
        if k not in seen:
            seen.add(k)
            out.append(k)
    return out


def ranking(items, scores: list[np.ndarray]) -> dict:
    """MRR@10, Hit@1, Recall@5 (and Recall@30, the ceiling) over the answerable items."""
    mrr, h1, r5, r30 = [], [], [], []
    for it, s in zip(items, scores):
        if not it.answerable:
            continue
        keys = ranked_keys(it, s)
        rr = next((1.0 / (i + 1) for i, k in enumerate(keys[:10]) if k in it.gold), 0.0)
        mrr.append(rr)
        h1.append(float(bool(keys) and keys[0] in it.gold))
        r5.append(len(set(keys[:5]) & it.gold) / len(it.gold))
        r30.append(len(set(keys) & it.gold) / len(it.gold))
    n = len(mrr)
    f = lambda x: round(float(np.mean(x)), 4) if x else None  # noqa: E731
    return {"n": n, "MRR@10": f(mrr), "Hit@1": f(h1), "R@5": f(r5), "R@30": f(r30)}


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error with ``bins`` equal-width bins over [0, 1]."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    if not len(probs):
        return float("nan")
    idx = np.minimum((probs * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() / len(probs) * abs(probs[m].mean() - labels[m].mean())
    return float(total)


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean predicted, observed rate, count) per non-empty bin."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    idx = np.minimum((probs * bins).astype(int), bins - 1)
    return [(round(float(probs[idx == b].mean()), 3), round(float(labels[idx == b].mean()), 3), int((idx == b).sum()))
            for b in range(bins) if (idx == b).any()]


def abstention(items, probs: list[np.ndarray], threshold: float) -> dict:
    """At ``threshold`` on the top probability: answerable questions left without a confident hit (miss), those whose
    confident top hit is gold, and out-of-corpus questions that get a confident hit (false-confident)."""
    ans = [(it, p) for it, p in zip(items, probs) if it.answerable]
    ooc = [(it, p) for it, p in zip(items, probs) if not it.answerable]
    top = lambda p: float(np.max(p)) if len(p) else 0.0  # noqa: E731
    miss = sum(top(p) < threshold for _, p in ans)
    right = sum(top(p) >= threshold and it.labels[int(np.argmax(p))] for it, p in ans)
    fc = sum(top(p) >= threshold for _, p in ooc)
    return {"threshold": round(float(threshold), 4), "answerable": len(ans), "ooc": len(ooc),
            "answerable_without_confident": miss, "answerable_confident_top_gold": int(right),
            "ooc_false_confident": fc, "ooc_false_confident_rate": round(fc / len(ooc), 3) if ooc else None}


def tradeoff(items, probs: list[np.ndarray]) -> list[dict]:
    """The abstention figures at every distinct top probability (the curve to choose a threshold from)."""
    tops = sorted({round(float(np.max(p)), 6) for p in probs if len(p)})
    return [abstention(items, probs, t) for t in tops]


def separation(pos, neg) -> float:
    """P(an answerable question's best probability > a not-answerable one's), ties half (the AUC): how well a stage
    tells the two apart at any threshold; NaN when either side is empty."""
    p, n = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    if not len(p) or not len(n):
        return float("nan")
    return round(float((p[:, None] > n[None, :]).mean() + 0.5 * (p[:, None] == n[None, :]).mean()), 4)
