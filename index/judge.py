"""The relevance stage's part of a search (``index.search.Searcher`` inherits it): the stage judges the first-stage
candidates, orders them and marks each with its calibrated relevance; with a filter, no provision is rated below what
the unfiltered search gives it; candidates beyond the stage's list follow, never above the lowest judged one."""
from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from index.backend import Scope
from index.relevance import Evidence, RelevanceStage, lexical_question
from index.types import Hit


class Ranked(NamedTuple):
    """Candidates of one retrieval, best first: rows, scores, the best plain cosine, and per row cosine and BM25."""

    rows: np.ndarray
    scores: np.ndarray
    top_cos: float | None
    cos: np.ndarray | None
    bm25: np.ndarray
    plain: np.ndarray | None = None  # the query vector (unadapted), for sentence cosines


class Judging:
    """The stage's methods of ``Searcher`` (they use its ``_rank``, ``_hits``, ``settings`` and index)."""

    def _judged(self, stage: RelevanceStage, text: str, hits: list[Hit], ranked: Ranked, at: list[int],
                concepts, mask: Scope | None) -> list[Hit]:
        """The stage judges the first ``stage.top_n`` candidates — the list it was trained on — so a question's first
        hits are the same whatever k is (before, k=100 let the stage promote candidates from ranks 31-100 and gave
        another top 10 than k=10).  Candidates beyond them (k > top_n) follow, with the relevance the stage gives them
        in the longer list, never above the lowest judged one, so hits stay best first."""
        n = stage.top_n
        head = self._judge(stage, text, hits[:n], ranked, at[:n], concepts, mask)
        if len(hits) <= n:
            return head
        _, prob = stage.judge(self._evidence(stage, text, hits, ranked, at, concepts))
        floor = min(h.relevance for h in head)
        capped = [min(float(p), floor) for p in prob[n:]]
        order = sorted(range(len(capped)), key=lambda i: -capped[i])  # stable: first-stage order on ties
        return head + [replace(hits[n + i], relevance=capped[i], confident=capped[i] >= stage.threshold) for i in order]

    def _judge(self, stage: RelevanceStage, text: str, hits: list[Hit], ranked: Ranked, at: list[int],
               concepts, mask: Scope | None) -> list[Hit]:
        """``hits`` re-ordered by the stage, each with its calibrated relevance and whether it is confident.

        With a filter, a provision's relevance is at least what the same question over the whole collection gave it:
        the stage reads the candidate list (ranks, gaps to the best), which a filter changes, and a filter must never
        hide a provision the unfiltered search presents as an answer."""
        if not hits:
            return hits
        raw, prob = stage.judge(self._evidence(stage, text, hits, ranked, at, concepts))
        if mask is not None:
            wide = self._rank(text, "hybrid", max(self.settings.candidates, 3 * stage.top_n), None, concepts)
            wide_hits, wide_at = self._hits(wide.rows, wide.scores, stage.top_n, None)
            if wide_hits:
                wide_prob = dict(zip((h.provision_id for h in wide_hits),
                                     stage.judge(self._evidence(stage, text, wide_hits, wide, wide_at, concepts))[1]))
                prob = np.maximum(prob, [wide_prob.get(h.provision_id, 0.0) for h in hits])
        return stage.mark(hits, raw, prob)

    def _evidence(self, stage: RelevanceStage, text: str, hits: list[Hit], ranked: Ranked, at: list[int],
                  concepts=()) -> Evidence:
        fused, cos, bm25, rows = (np.asarray([a[i] for i in at]) for a in (ranked.scores, ranked.cos, ranked.bm25,
                                                                             ranked.rows))
        sent = self._sentence_cosines(stage, ranked.plain, rows) if stage.needs_sentences else None
        return Evidence.of(self._ix.lexical, lexical_question(text, concepts), hits, fused, cos, bm25, rows, sent)

    @staticmethod
    def _sentence_cosines(stage: RelevanceStage, qvec: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
        """Each row's best sentence cosine to the (unadapted) query vector, from the index's sentence vectors."""
        sentences = stage.sentences
        if sentences is None or qvec is None:
            raise ValueError("this index's relevance stage reads sentence vectors and the index has none: "
                             "rebuild it with `policyqa ingest`")
        return sentences.best(qvec, rows)
