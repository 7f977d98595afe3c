"""The 要点: verbatim sentences of the answering hits, ranked by BM25 over the question's words, each with its card."""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.highlight import Sentence, _e, clip, query_words, split_sentences
from index.normalize import normalize_for_match
from index.types import Hit

#: BM25 constants for ranking the 要点 sentences (the usual defaults).
_K1, _B = 1.2, 0.75
_HEADING_SENTENCE = re.compile(r"^\s*(?:[一二三四五六七八九十]+、|[（(][一二三四五六七八九十\d]+[）)]|\d{1,3}[.．、])")


@dataclass(frozen=True)
class Quote:
    """A sentence chosen for the 要点: verbatim text, the card it comes from, its offsets there, and its score."""

    text: str
    rank: int  # 1-based card number
    start: int
    end: int
    score: float


def _covers(word: str, parts: Sequence[str]) -> bool:
    """Whether ``word`` is a concatenation of ``parts`` (异地结算 = 异地 + 结算)."""
    if not word:
        return True
    return any(word.startswith(p) and _covers(word[len(p):], parts) for p in parts)


def ranking_words(query: str) -> tuple[str, ...]:
    """The query words that rank 要点 sentences: jieba's search-mode fragments of a longer word are dropped
    (大湾区 → not 大湾, 湾区; 一体化 → not 一体) unless they spell the word out (异地结算 → 异地, 结算 stay)."""
    words = query_words(query)
    keep = []
    for w in words:
        longer = [v for v in words if len(v) > len(w) and w in v]
        if all(_covers(v, [p for p in words if p != v and p in v]) for v in longer):
            keep.append(w)
    return tuple(keep)


def _term_patterns(query: str) -> list[tuple[str, re.Pattern, re.Pattern | None]]:
    """(word, exact pattern, abbreviation pattern) per query word; "医保" also matches 医疗保障 / 医疗保险 at a discount."""
    out = []
    for word in ranking_words(query):
        abbrev = None
        if len(word) == 2 and all("\u4e00" <= ch <= "\u9fff" for ch in word):  # 医保 = 医[疗]保[障]: a 缩略语
            abbrev = re.compile(re.escape(word[0]) + r"[\u4e00-\u9fff]{1,2}" + re.escape(word[1]))
        out.append((word, re.compile(re.escape(word)), abbrev))
    return out


def _candidates(hits: Sequence[Hit]) -> list[tuple[Sentence, int, str]]:
    """(sentence, card number, normalised text) for the body sentences of the hits, each sentence text once."""
    seen: set[str] = set()
    out = []
    for rank, hit in enumerate(hits, start=1):
        heading = hit.path[-1].rstrip("。；：") if hit.path else None
        for sent in split_sentences(hit.text):
            text = sent.text.strip()
            if len(text) < 8 or text.rstrip("。；！？") == heading or text in seen or text[0] in "（(" \
                    or (_HEADING_SENTENCE.match(text) and len(text) <= 24):
                continue  # fragments, notes "（牵头单位：…）" and an item's own heading sentence say nothing
            seen.add(text)
            out.append((sent, rank, normalize_for_match(text)))
    return out


def rank_quotes(hits: Sequence[Hit], query: str) -> list[Quote]:
    """Body sentences of the hits ranked by BM25 over the query's words, best first; zero scores dropped.

    The sentences of the shown hits are the collection: a query word that occurs in most of them ("大湾区" when every
    hit is about the Greater Bay Area) weighs little, a rare one ("报销", "医保") much.  A two-character query
    word also matches its long form at 0.8 of the weight (医保 in "医疗保障同城同结算").  Each sentence is quoted
    verbatim; the score only orders them.
    """
    pool = _candidates(hits)
    patterns = _term_patterns(query)
    if not pool or not patterns:
        return []
    tf: list[dict[str, float]] = []
    for _, _, norm in pool:
        counts: dict[str, float] = {}
        for word, exact, abbrev in patterns:
            n = len(exact.findall(norm))
            if n == 0 and abbrev is not None:
                n = 0.8 * len(abbrev.findall(norm))
            if n:
                counts[word] = n
        tf.append(counts)
    size = len(pool)
    df = {word: sum(1 for counts in tf if word in counts) for word, _, _ in patterns}
    idf = {w: math.log(1 + (size - n + 0.5) / (n + 0.5)) for w, n in df.items()}
    avg = sum(len(norm) for _, _, norm in pool) / size
    quotes = []
    for (sent, rank, norm), counts in zip(pool, tf):
        norm_len = _K1 * (1 - _B + _B * len(norm) / avg)
        score = sum(idf[w] * n * (_K1 + 1) / (n + norm_len) for w, n in counts.items())
        if score > 0:
            quotes.append(Quote(sent.text.strip(), rank, sent.start, sent.end, score))
    return sorted(quotes, key=lambda q: (-q.score, q.rank, q.start))


def summary(hits: Sequence[Hit], query: str, max_sentences: int = 3, top: int = 5,
            min_share: float = 0.35) -> list[tuple[str, int]]:
    """The 要点: up to ``max_sentences`` verbatim sentences from the top hits, as (sentence, 1-based card number).

    Sentences are ranked by ``rank_quotes``; one per card first (so the 要点 spans the different provisions), and
    none scoring below ``min_share`` of the best.  With no query word in any sentence (a purely semantic match)
    the opening sentence of the best provision is quoted.
    """
    return [(q.text, q.rank) for q in summary_quotes(hits, query, max_sentences, top, min_share)]


def summary_quotes(hits: Sequence[Hit], query: str, max_sentences: int = 3, top: int = 5,
                   min_share: float = 0.35, ranked: Sequence[Quote] | None = None) -> list[Quote]:
    """``summary`` with the offsets of each quote in its card's text; ``ranked`` is ``rank_quotes(hits, query)``."""
    ranked = [q for q in (rank_quotes(hits, query) if ranked is None else ranked) if q.rank <= top]
    if not ranked:
        first = next((s for s in split_sentences(hits[0].text) if s.text.strip()), None) if hits else None
        return [Quote(first.text.strip(), 1, first.start, first.end, 0.0)] if first else []
    floor = ranked[0].score * min_share
    picked: list[Quote] = []
    for per_card in (True, False):  # first the best sentence of each card, then second sentences if room is left
        for quote in ranked:
            if len(picked) == max_sentences or quote.score < floor:
                break
            if quote in picked or (per_card and any(p.rank == quote.rank for p in picked)):
                continue
            picked.append(quote)
    return picked


def render_summary(hits: Sequence[Hit], query: str, quotes: Sequence[Quote] | None = None) -> str:
    """The 要点 block: quoted sentences, each followed by a [n] link to its card."""
    items = [(q.text, q.rank) for q in (summary_quotes(hits, query) if quotes is None else quotes)]
    if not items:
        return ""
    # [n] scrolls to card n; its data says which provision the full-text view opens (app/ui.py RESULTS_JS)
    lines = "".join(
        f'<li>{_e(clip(sentence, 200))}<a class="pq-ref" href="#pq-card-{rank}" data-doc="{_e(hits[rank - 1].doc_id)}" '
        f'data-pid="{_e(hits[rank - 1].provision_id)}" data-card="{rank}">[{rank}]</a></li>'
        for sentence, rank in items
    )
    return f'<section class="pq-summary"><h3>要点</h3><ul>{lines}</ul><p class="pq-note">以上均为原文摘录，请以原文为准。</p></section>'


