"""Hits and documents rendered as escaped HTML: result cards, the extractive 要点, full text, 对比.

Every piece of document or query text that goes into HTML passes through ``html.escape`` here:
``gr.HTML`` does not sanitise, so an ``<img onerror=…>`` in a provision would otherwise run.
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from app.cite import hit_citation
from index.normalize import normalize_for_match
from index.types import Document, Hit

#: Question words that match almost any provision; highlighting them would hide the real matches.
STOP_TERMS = frozenset(
    "哪些 什么 怎么 怎样 如何 是否 哪个 哪里 有关 关于 涉及 相关 条款 规定 内容 提到 方面 问题 请问 一下 政策 文件 举措 措施"
    .split()
)
_SENTENCE_END = "。！？；!?;\n"
_SAFE_URL = re.compile(r"^https?://", re.IGNORECASE)
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
    lines = "".join(
        f'<li>{_e(_clip(sentence, 200))}<a class="pq-ref" href="#pq-card-{rank}" data-card="{rank}">[{rank}]</a></li>'
        for sentence, rank in items
    )
    return f'<section class="pq-summary"><h3>要点</h3><ul>{lines}</ul><p class="pq-note">以上均为原文摘录，请以原文为准。</p></section>'


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _source_links(document: Document | None, fallback: Sequence[str] = ()) -> str:
    """Every rendering the document was merged from, linked when its URL is http(s); else ``fallback`` paths."""
    if document is not None and document.sources:
        parts = []
        for src in document.sources:
            label = _e(f"{src.path}（{src.format}）")
            parts.append(f'<a href="{_e(src.url)}" target="_blank" rel="noopener noreferrer">{label}</a>'
                         if src.url and _SAFE_URL.match(src.url) else label)
        return "；".join(parts)
    return "；".join(_e(s) for s in fallback)


#: What the page says about a hit's relevance, in words and a colour class (one function drives every display).
RELEVANCE_WORDS = {"strong": "直接相关", "weak": "关联较弱"}
NO_ANSWER_NOTE = "未找到直接回答该问题的条款。以下是最接近的条款，相关性较弱，仅供参考。"


def relevance_level(hit: Hit) -> str:
    """"strong" for a hit presented as an answer (``confident``), else "weak"."""
    return "strong" if hit.confident else "weak"


def _relevance_badge(hit: Hit) -> str:
    level = relevance_level(hit)
    value = f"相关度 {hit.relevance:.2f}" if hit.relevance is not None else f"相关度 {hit.score:.3f}"
    if hit.relevance is None:  # no relevance stage in this index: the hybrid score, as before
        return value
    return f'<span class="pq-rel pq-rel-{level}">{RELEVANCE_WORDS[level]}</span> {value}'


def render_card(hit: Hit, rank: int, query: str, document: Document | None = None, compact: bool = False,
                best: tuple[int, int] | None = None) -> str:
    """One result card: citation line, highlighted verbatim text, units, source(s) and a 查看全文 button."""
    units = []
    if hit.lead_units:
        units.append(f"<span><b>牵头单位：</b>{_e(hit.lead_units)}</span>")
    if hit.resp_units:
        units.append(f"<span><b>责任单位：</b>{_e(hit.resp_units)}</span>")
    meta = [m for m in (hit.region, hit.issuer, hit.date) if m]
    sources = _source_links(document, hit.sources)
    anchor = "" if compact else f' id="pq-card-{rank}"'  # 要点 markers link here; 对比 columns have none
    return (
        f'<article class="pq-card"{anchor} data-rank="{rank}">'
        f'<div class="pq-cite"><span class="pq-n">[{rank}]</span> {_e(hit_citation(hit))}</div>'
        f'<div class="pq-text">{highlight(hit.text, query, best)}</div>'
        + (f'<div class="pq-units">{"".join(units)}</div>' if units else "")
        + ("" if compact else
           f'<div class="pq-meta">{" · ".join(_e(m) for m in meta)}'
           f'{" · " if meta else ""}{_relevance_badge(hit)}</div>'
           + (f'<div class="pq-src"><b>来源：</b>{sources}</div>' if sources else ""))
        + f'<button class="pq-open" type="button" data-doc="{_e(hit.doc_id)}" data-pid="{_e(hit.provision_id)}">'
        "查看全文</button></article>"
    )


def _best_per_card(hits: Sequence[Hit], query: str,
                   ranked: Sequence[Quote] | None = None) -> dict[int, tuple[int, int]]:
    """Card number -> offsets of its best-ranked sentence (``rank_quotes`` over these hits)."""
    best: dict[int, tuple[int, int]] = {}
    for q in rank_quotes(hits, query) if ranked is None else ranked:
        best.setdefault(q.rank, (q.start, q.end))
    return best


def render_empty(query: str, reason: str | None) -> str:
    """The empty state: says plainly that nothing relevant was found, and why."""
    if not query.strip():
        return '<div class="pq-empty">请输入问题，例如“哪些条款涉及医保异地结算”。</div>'
    why = f'<p class="pq-why">{_e(reason)}</p>' if reason else ""
    return (f'<div class="pq-empty"><p>没有找到与“{_e(_clip(query, 80))}”相关的条款。</p>{why}'
            "<p>可以换个说法、减少筛选条件，或改用关键词检索。</p></div>")


def render_results(query: str, hits: Sequence[Hit], documents: dict[str, Document],
                   reason: str | None = None, warnings: Sequence[str] = (), elapsed: float | None = None,
                   request_id: str = "", notes: Sequence[str] = (), terms: Sequence[str] = ()) -> str:
    """The whole result pane: warnings, 要点, then one card per hit (or the empty state).

    ``request_id`` is written into the pane so a page (or a browser test) can tell a fresh answer from the last one.
    ``terms`` (the Chinese words an English query was matched with) are highlighted and quoted by, like the query's.
    """
    warn = "".join(f'<div class="pq-warn">{_e(w)}</div>' for w in warnings)
    warn += "".join(f'<div class="pq-info">{_e(n)}</div>' for n in notes)
    if not hits:
        body = warn + render_empty(query, reason)
    else:
        match = " ".join([query, *terms])
        ranked = rank_quotes(hits, match)
        best = _best_per_card(hits, match, ranked)  # the sentence the 要点 quotes from a card is the one it highlights
        cards = "".join(render_card(h, i, match, documents.get(h.doc_id), best=best.get(i))
                        for i, h in enumerate(hits, start=1))
        took = f" · 用时 {elapsed:.2f} 秒" if elapsed is not None else ""
        answers = [h for h in hits if h.confident]  # the 要点 quotes only hits presented as answers (a prefix)
        if answers:
            quotes = summary_quotes(answers, match, ranked=[q for q in ranked if q.rank <= len(answers)])
            head = render_summary(answers, match, quotes)
        else:
            head = f'<div class="pq-warn pq-noanswer">{_e(NO_ANSWER_NOTE)}</div>'
        body = f'{warn}{head}<div class="pq-count">共 {len(hits)} 条结果{took}</div>{cards}'
    return f'<div class="pq-pane" data-query="{_e(query)}" data-request="{_e(request_id)}">{body}</div>'


def outline(document: Document) -> list[tuple[int, str, int]]:
    """The heading tree as (depth, heading, index of the first provision under it), in document order."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for n, prov in enumerate(document.provisions):
        for depth in range(1, len(prov.path) + 1):
            key = prov.path[:depth]
            if key not in seen:
                seen.add(key)
                out.append((depth - 1, prov.path[depth - 1], n))
    return out


def render_document(document: Document, provision_id: str | None = None, query: str = "") -> str:
    """The whole document with its outline; the chosen provision highlighted and marked as the scroll target."""
    head = [f"<h2>{_e(document.title)}</h2>"]
    facts = [(label, value) for label, value in (("文号", document.doc_number), ("发文机关", document.issuer),
                                                ("日期", document.date), ("地区", document.region)) if value]
    if facts:
        head.append('<div class="pq-meta">' + " · ".join(f"{k}：{_e(v)}" for k, v in facts) + "</div>")
    sources = _source_links(document)
    if sources:
        head.append(f'<div class="pq-src"><b>来源：</b>{sources}</div>')
    target_path = next((p.path for p in document.provisions if p.id == provision_id), None)

    def here(depth: int, n: int) -> str:  # the headings above the target provision are marked in the outline
        key = document.provisions[n].path[: depth + 1]
        return " pq-here" if target_path is not None and target_path[: depth + 1] == key else ""

    nav = "".join(
        f'<a class="pq-ol pq-ol-{min(depth, 3)}{here(depth, n)}" href="#pq-prov-{n}" data-anchor="pq-prov-{n}">'
        f"{_e(_clip(title, 40))}</a>"
        for depth, title, n in outline(document)
    )
    body, pos = [], 0
    for n, prov in enumerate(document.provisions):
        if prov.start < pos:  # overlapping offsets would duplicate text; show the provision alone
            continue
        body.append(_e(document.text[pos : prov.start]))
        target = prov.id == provision_id
        inner = highlight(document.text[prov.start : prov.end], query) if target else _e(document.text[prov.start : prov.end])
        units = "".join(f'<span class="pq-units"><b>{label}：</b>{_e(v)}</span>'
                        for label, v in (("牵头单位", prov.lead_units), ("责任单位", prov.resp_units)) if v and target)
        body.append(f'<span id="pq-prov-{n}" class="pq-prov{" pq-target" if target else ""}">{inner}{units}</span>')
        pos = prov.end
    body.append(_e(document.text[pos:]))
    nav_html = f'<nav class="pq-outline"><h4>目录</h4>{nav}</nav>' if nav else ""
    return (f'<div class="pq-doc">{"".join(head)}<div class="pq-doc-grid">{nav_html}'
            f'<div class="pq-doc-body">{"".join(body)}</div></div></div>')


def render_compare(query: str, groups: Sequence[tuple[str, Sequence[Hit]]], documents: dict[str, Document]) -> str:
    """对比: one column per document or region, each with its own best provisions for the same question."""
    if not groups:
        return render_empty(query, "没有可对比的文件。")
    cols = []
    for label, hits in groups:
        best = _best_per_card(hits, query)
        cards = "".join(render_card(h, i, query, documents.get(h.doc_id), compact=True, best=best.get(i))
                        for i, h in enumerate(hits, start=1)) or '<div class="pq-empty">未找到相关条款。</div>'
        cols.append(f'<section class="pq-col"><h3>{_e(label)}</h3>{cards}</section>')
    return f'<div class="pq-compare">{"".join(cols)}</div>'


#: Styles for the classes above (passed to ``launch(css=…)``; Gradio 6 takes CSS there, not in Blocks).
CSS = """
.pq-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 14px; margin: 10px 0; }
.pq-card.pq-flash { box-shadow: 0 0 0 3px #f5b94280; }
.pq-cite { font-weight: 600; color: var(--body-text-color); margin-bottom: 6px; }
.pq-n { color: #b45309; }
.pq-text, .pq-doc-body { white-space: pre-wrap; line-height: 1.75; }
.pq-text mark, .pq-doc-body mark { background: #fde68a; color: inherit; padding: 0 1px; }
.pq-best { background: #e0f2fe; border-radius: 3px; }
.pq-units { margin-top: 6px; font-size: 0.92em; display: flex; gap: 1.5em; flex-wrap: wrap; }
.pq-meta, .pq-src, .pq-count, .pq-note { font-size: 0.85em; color: var(--body-text-color-subdued); margin-top: 4px; }
.pq-open { margin-top: 8px; padding: 1px 10px; font-size: 0.85em; font-weight: normal; border: 1px solid var(--border-color-primary); border-radius: 6px;
  background: var(--button-secondary-background-fill); cursor: pointer; }
.pq-summary { background: var(--background-fill-secondary); border-radius: 8px; padding: 8px 14px; }
.pq-summary h3 { margin: 4px 0; } .pq-summary li { margin: 4px 0; line-height: 1.7; }
.pq-ref { margin-left: 2px; font-weight: 600; text-decoration: none; }
.pq-empty { padding: 18px; border: 1px dashed var(--border-color-primary); border-radius: 8px; }
.pq-warn { padding: 6px 10px; background: #fef3c7; border-radius: 6px; margin-bottom: 6px; }
.pq-rel { padding: 0 6px; border-radius: 4px; font-weight: 600; }
.pq-rel-strong { background: #dcfce7; color: #166534; }
.pq-rel-weak { background: #f3f4f6; color: #6b7280; }
.pq-info { padding: 6px 10px; background: #eef2ff; color: #3730a3; border-radius: 6px; margin-bottom: 6px; font-size: 0.9em; }
.pq-doc-grid { display: grid; grid-template-columns: 220px 1fr; gap: 16px; }
.pq-outline { max-height: 75vh; overflow: auto; font-size: 0.9em; border-right: 1px solid var(--border-color-primary); }
.pq-outline h4 { margin: 0 0 6px; text-align: left; }
.pq-ol { display: block; padding: 2px 0; text-decoration: none; text-align: left; }
.pq-here { font-weight: 700; }
.pq-ol-1 { padding-left: 1em; } .pq-ol-2 { padding-left: 2em; } .pq-ol-3 { padding-left: 3em; }
.pq-doc-body { max-height: 75vh; overflow: auto; padding-right: 8px; }
.pq-target { display: block; background: #fef9c3; outline: 2px solid #f59e0b; border-radius: 4px; padding: 4px; }
.pq-compare { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 12px; }
.pq-col h3 { font-size: 1em; margin: 4px 0; }
"""
