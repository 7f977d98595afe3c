"""How strongly a hit answers the question, in words and a colour: one function (``relevance_level``) drives every
display of it — card badges, which cards are folded, which ones the 要点 quotes, 对比 and the export."""
from __future__ import annotations

from collections.abc import Sequence

from index.types import Hit

#: Calibrated relevance (P(answers the question), index/relevance.py) from which a confident hit is "strong". The
#: stage's own threshold is low (0.055 for the shipped model: tuned to miss few answers), so a hit just above it
#: ("量子计算机发展" → 0.10, 0.07, 0.06 on the default corpus) is shown as a possible answer, not quoted as one.
STRONG_MIN = 0.25

LEVELS = ("strong", "possible", "weak")
WORDS = {"strong": "直接相关", "possible": "可能相关", "weak": "关联较弱"}
#: What each level means, for the card's tooltip and the legend.
MEANING = {"strong": "该条款很可能直接回答了问题",
           "possible": "该条款与问题有关，但不一定直接回答",
           "weak": "该条款与问题的关联弱，仅供参考"}
NO_STRONG_NOTE = "没有找到直接回答该问题的条款。以下是最接近的条款，请逐条核对。"
#: When a hit reaches the stage's threshold (the JSON says ``found``) but none is 直接相关: the page must not say that
#: nothing was found, nor quote the hits as an answer.
POSSIBLE_NOTE = "以下条款达到相关阈值、可能与问题有关，但不一定直接回答该问题，请逐条核对。"
MORE_LABEL = "更多可能相关的条款"


def relevance_level(hit: Hit) -> str:
    """"strong" (an answer), "possible" (at or above the stage's threshold, but not by much) or "weak" (below it).

    Without a relevance stage (``relevance`` is None) every hit the searcher returns counts as strong, as before."""
    if not hit.confident:
        return "weak"
    if hit.relevance is None or hit.relevance >= STRONG_MIN:
        return "strong"
    return "possible"


def split_levels(hits: Sequence[Hit]) -> tuple[list[tuple[int, Hit]], list[tuple[int, Hit]]]:
    """(shown, folded): the (1-based rank, hit) pairs at or above the threshold, and those below it."""
    shown, folded = [], []
    for rank, hit in enumerate(hits, start=1):
        (folded if relevance_level(hit) == "weak" else shown).append((rank, hit))
    return shown, folded


def strong_hits(hits: Sequence[Hit]) -> list[Hit]:
    """The hits presented as answers (the 要点 quotes only these)."""
    return [h for h in hits if relevance_level(h) == "strong"]


def relevance_text(hit: Hit) -> str:
    """"直接相关 · 相关度 0.64" (or the hybrid score where the index has no relevance stage)."""
    if hit.relevance is None:
        return f"相关度 {hit.score:.3f}"
    return f"{WORDS[relevance_level(hit)]} · 相关度 {hit.relevance:.2f}"
