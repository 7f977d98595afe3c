"""The search backend seam: where candidates, cosines and BM25 scores come from (embedded FAISS + bm25s, or Milvus).

The Searcher asks a backend four things per query — dense candidates, the cosines of given rows, BM25 candidates and
the BM25 scores of given rows — always within a ``Scope`` (the request's filters, as a row mask for the embedded
backend and as the same fields for a backend that filters server-side).  Rows are positions in the index's
``chunks.jsonl``; every backend returns the same scores for the same rows (cosine of unit vectors, bm25s' Lucene
BM25 over the index's own jieba tokens), so fusion, the relevance stage and abstention run unchanged on either.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from index.dense import DenseIndex, exact_scores
from index.lexical import LexicalIndex


@dataclass(frozen=True)
class Scope:
    """The documents a request may return: the chunk-row mask, and the filters it was computed from."""

    mask: np.ndarray
    doc: str | None = None
    region: str | None = None  # folded (``normalize.fold``), matched as a substring
    issuer: str | None = None  # folded, matched as a substring
    year: int | None = None


class LexicalScores(Protocol):
    """One query's BM25 scores (plus its translated concepts'), computed lazily where the backend is remote."""

    def top(self, n: int) -> np.ndarray:
        """The ``n`` best rows with a positive score, best first (ties by row)."""

    def at(self, rows: np.ndarray) -> np.ndarray:
        """The scores of ``rows`` (0 where nothing matches or the row is out of scope)."""


class SearchBackend(Protocol):
    """What a Searcher needs from the stored vectors and BM25 index (``EmbeddedBackend``, ``index.milvus``)."""

    kind: str

    def dense_candidates(self, qvec: np.ndarray, n: int, scope: Scope | None, candidates: int) -> np.ndarray:
        """Rows of the ``n`` best cosines within ``scope``, best first (``candidates``: QuerySettings.candidates)."""

    def cosines(self, qvec: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosines of ``qvec`` with the vectors of ``rows``."""

    def lexical(self, text: str, concepts: Sequence[Sequence[str]], scope: Scope | None) -> LexicalScores:
        """BM25 of ``text`` plus, per translated concept, the best of its words (``LexicalIndex.concept_scores``)."""


class _FullScores:
    """Scores of every row, as the embedded index computes them."""

    def __init__(self, scores: np.ndarray):
        self.all = scores

    def top(self, n: int) -> np.ndarray:
        return top_rows(self.all, np.flatnonzero(self.all > 0), n)

    def at(self, rows: np.ndarray) -> np.ndarray:
        return self.all[rows]


class EmbeddedBackend:
    """The default backend: FAISS over ``vectors.npy`` and bm25s, in this process (the index folder holds both)."""

    kind = "embedded"

    def __init__(self, vectors: np.ndarray, dense: DenseIndex, lexical: LexicalIndex):
        self.vectors, self.dense, self.lexical_index = vectors, dense, lexical

    def dense_candidates(self, qvec: np.ndarray, n: int, scope: Scope | None, candidates: int) -> np.ndarray:
        if scope is None:
            return self.dense.search(qvec, n)[1]
        mask = scope.mask
        allowed = np.flatnonzero(mask)
        if len(allowed) > candidates * 50:
            # Many rows pass the filter: over-fetch from the ANN index and keep the allowed ones.
            rows = self.dense.search(qvec, n * 10)[1]
            rows = rows[mask[rows]][:n]
            if len(rows) >= min(n, len(allowed)):
                return rows
        # Few rows pass (one document, one year…): an exact scan of just those rows is cheap and exact.
        cos = exact_scores(self.vectors, qvec, allowed)
        return allowed[np.argsort(-cos, kind="stable")[:n]]

    def cosines(self, qvec: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return exact_scores(self.vectors, qvec, rows)

    def lexical(self, text: str, concepts: Sequence[Sequence[str]], scope: Scope | None) -> LexicalScores:
        mask = None if scope is None else scope.mask
        scores = self.lexical_index.scores(text, mask)
        if concepts:
            scores = scores + self.lexical_index.concept_scores(concepts, mask)
        return _FullScores(scores)


def top_rows(scores: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` best of ``rows`` (ascending) by ``scores``, best first, ties by row: a stable full sort's result.

    Only the rows at or above the n-th best score are sorted: a common word matches most of a 150k-provision corpus,
    and sorting all of them was the largest cost of a search after the query encoding (2 of 6 ms).
    """
    vals = scores[rows]
    if len(vals) > n > 0:
        nth = np.partition(vals, len(vals) - n)[len(vals) - n]
        keep = vals >= nth  # every tie of the n-th score stays, so ties resolve by row as before
        rows, vals = rows[keep], vals[keep]
    return rows[np.argsort(-vals, kind="stable")[:n]]
