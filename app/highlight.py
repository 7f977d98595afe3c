"""Query words and their highlighting in provision text: sentences, terms, ``<mark>`` and the best sentence.

Every piece of text that goes into HTML passes through ``html.escape`` here (``gr.HTML`` does not sanitise).
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from index.normalize import normalize_for_match

#: Question words that match almost any provision; highlighting them would hide the real matches.
STOP_TERMS = frozenset(
    "哪些 什么 怎么 怎样 如何 是否 哪个 哪里 有关 关于 涉及 相关 条款 规定 内容 提到 方面 问题 请问 一下 政策 文件 举措 措施"
    .split()
)
_SENTENCE_END = "。！？；!?;\n"
#: Highlighting looks at this much of the query at most (the matching is quadratic in query length).
HIGHLIGHT_QUERY_CHARS = 200  # only the start of a long question drives highlighting


@dataclass(frozen=True)
class Sentence:
    """One sentence of a text, with its offsets, and how many query characters it covers."""

    text: str
    start: int
    end: int
    score: int


def _e(text: object) -> str:
    """Escape for HTML element content and quoted attributes."""
    return escape(str(text), quote=True)


@functools.lru_cache(maxsize=1)
def _tokenizer():
    """The project's Chinese tokenizer (jieba search mode, policy-term dictionary), or None if unavailable."""
    try:
        from index.tokenize import ChineseTokenizer
    except ImportError:
        return None
    return ChineseTokenizer()


@functools.lru_cache(maxsize=512)
def query_words(query: str) -> tuple[str, ...]:
    """The words of ``query`` worth highlighting: tokenizer words of 2+ characters, question words dropped."""
    query = query.strip()[:HIGHLIGHT_QUERY_CHARS]
    tok = _tokenizer()
    if tok is not None:
        words = set(tok.tokenize(query))
    else:  # no tokenizer: every 2-4 character piece (noisier, but still only text that is in the query)
        low = query.lower()
        words = {low[i : i + n] for n in (2, 3, 4) for i in range(len(low) - n + 1)}
    words = {w for w in words if len(w) >= 2 and not w.isspace() and w not in STOP_TERMS}
    return tuple(sorted(words, key=lambda w: (-len(w), w)))


def query_terms(query: str, text: str) -> list[str]:
    """Query words, and query phrases of 3+ characters, that occur in ``text`` (case-insensitive), longest first."""
    low = text.lower()
    terms = {w for w in query_words(query) if w in low}
    q = _normalized(query)
    i = 0
    while i < len(q) - 2:  # greedy longest phrases: catches names the tokenizer splits ("长株潭")
        j = i + 3
        while j <= len(q) and q[i:j] in low:
            j += 1
        if j - 1 - i >= 3:
            terms.add(q[i : j - 1])
            i = j - 1
        else:
            i += 1
    return sorted(terms, key=lambda w: (-len(w), w))


@functools.lru_cache(maxsize=512)
def _normalized(query: str) -> str:
    return normalize_for_match(query[:HIGHLIGHT_QUERY_CHARS])


def term_mask(text: str, terms: Sequence[str]) -> list[bool]:
    """Per character of ``text``: is it inside an occurrence of one of ``terms`` (case-insensitive)."""
    mask = [False] * len(text)
    low = text.lower() if len(text.lower()) == len(text) else text
    for term in terms:
        start = low.find(term)
        while start >= 0:
            mask[start : start + len(term)] = [True] * len(term)
            start = low.find(term, start + 1)
    return mask


def split_sentences(text: str, query: str = "") -> list[Sentence]:
    """Split at 。！？； and line breaks, keeping offsets; score each sentence by query characters it contains."""
    terms = query_terms(query, text) if query else []
    mask = term_mask(text, terms)
    out, start = [], 0
    for i, ch in enumerate(text):
        if ch in _SENTENCE_END or i == len(text) - 1:
            end = i + 1
            piece = text[start:end]
            if piece.strip():
                out.append(Sentence(piece, start, end, sum(mask[start:end])))
            start = end
    return out


def best_sentence(text: str, query: str) -> Sentence | None:
    """The sentence of ``text`` covering most query characters (earliest on a tie); None when none matches."""
    scored = [s for s in split_sentences(text, query) if s.score > 0]
    return max(scored, key=lambda s: (s.score, -s.start)) if scored else None


def highlight(text: str, query: str, best: tuple[int, int] | None = None) -> str:
    """Escaped ``text`` with query terms in ``<mark>`` and the best-matching sentence in a ``pq-best`` span
    (``best``: its offsets when the caller chose it, e.g. the sentence the 要点 quotes from this card)."""
    terms = query_terms(query, text) if query else []
    mask = term_mask(text, terms)
    if best is None:
        found = best_sentence(text, query) if terms else None
        best = (found.start, found.end) if found else None
    b0, b1 = best if best else (-1, -1)
    out: list[str] = []
    i = 0
    while i < len(text):
        # a run: same mark state and same side of the best-sentence boundaries
        j = i + 1
        while j < len(text) and mask[j] == mask[i] and j not in (b0, b1):
            j += 1
        if i == b0:
            out.append('<span class="pq-best">')
        piece = _e(text[i:j])
        out.append(f"<mark>{piece}</mark>" if mask[i] else piece)
        if j == b1:
            out.append("</span>")
        i = j
    return "".join(out)




def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
