"""Fusion of dense and BM25 evidence: weighted reciprocal-rank fusion, or a weighted sum of calibrated scores."""
from __future__ import annotations

import numpy as np


def ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each entry of ``scores`` (higher score = better rank; ties broken by position)."""
    order = np.argsort(-scores, kind="stable")
    out = np.empty(len(scores), dtype=np.int64)
    out[order] = np.arange(1, len(scores) + 1)
    return out


def rrf(rank_lists: list[np.ndarray], weights: list[float], k: float = 60.0) -> np.ndarray:
    """Weighted reciprocal-rank fusion: sum_i w_i / (k + rank_i); a rank of 0 means "not retrieved" and adds nothing."""
    if len(rank_lists) != len(weights):
        raise ValueError("rrf needs one weight per rank list")
    total = np.zeros(len(rank_lists[0]) if rank_lists else 0, dtype=np.float64)
    for r, w in zip(rank_lists, weights):
        r = np.asarray(r)
        total += np.where(r > 0, w / (k + np.maximum(r, 1)), 0.0)
    return total


def saturate(bm25: np.ndarray, half: float) -> np.ndarray:
    """Map BM25 scores to [0, 1) with s / (s + half): query-independent, so a fused score can be thresholded."""
    bm25 = np.maximum(np.asarray(bm25, dtype=np.float64), 0.0)
    return bm25 / (bm25 + half)


def weighted(cosines: np.ndarray, bm25: np.ndarray, w_dense: float, w_bm25: float, half: float) -> np.ndarray:
    """w_dense * cosine + w_bm25 * saturate(bm25): an absolute relevance score (comparable across queries)."""
    return w_dense * np.asarray(cosines, dtype=np.float64) + w_bm25 * saturate(bm25, half)


def fuse(
    cosines: np.ndarray,
    bm25: np.ndarray,
    method: str,
    w_dense: float,
    w_bm25: float,
    rrf_k: float = 60.0,
    bm25_half: float = 10.0,
) -> np.ndarray:
    """Fused score of each candidate from its cosine and BM25 score (``method``: "weighted" or "rrf")."""
    cosines, bm25 = np.asarray(cosines), np.asarray(bm25)
    if method == "weighted":
        return weighted(cosines, bm25, w_dense, w_bm25, bm25_half)
    if method == "rrf":
        # a candidate with no lexical match is not "ranked" by BM25, whatever its position in the array
        bm25_ranks = np.where(bm25 > 0, ranks(bm25), 0)
        return rrf([ranks(cosines), bm25_ranks], [w_dense, w_bm25], rrf_k)
    raise ValueError(f"unknown fusion method {method!r}; use 'weighted' or 'rrf'")
