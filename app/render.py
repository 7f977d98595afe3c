"""The result pane and 对比 as escaped HTML: cards with their relevance, the 要点, the folded weak hits.

Every piece of document or query text that goes into HTML passes through ``html.escape``: ``gr.HTML`` does not
sanitise, so an ``<img onerror=…>`` in a provision would otherwise run.  Highlighting lives in app/highlight.py, the
要点 in app/summary.py, the full-text view in app/document_view.py, the styles in app/styles.py; the names tests and
callers use are re-exported here.
"""
from __future__ import annotations

from collections.abc import Sequence

from app import facts as facts_mod
from app.cite import hit_citation, reference_of
from app.document_view import outline, render_document  # noqa: F401  (re-exported)
from app.highlight import _e, clip, highlight, query_terms, split_sentences  # noqa: F401
from app.levels import MEANING, MORE_LABEL, NO_STRONG_NOTE, POSSIBLE_NOTE, WORDS, relevance_level, split_levels
from app.styles import CSS  # noqa: F401  (re-exported: serve passes it to launch)
from app.summary import (  # noqa: F401  (re-exported)
    Quote, rank_quotes, ranking_words, render_summary, summary, summary_quotes)
from index.types import Document, Hit

_clip = clip
#: Shown above the closest hits when none answers the question (the relevance stage judged them all weak or possible).
NO_ANSWER_NOTE = NO_STRONG_NOTE
RELEVANCE_WORDS = WORDS


def _relevance_badge(hit: Hit) -> str:
    if hit.relevance is None:  # no relevance stage in this index: the hybrid score, as before
        return f'<span class="pq-score">相关度 {hit.score:.3f}</span>'
    level = relevance_level(hit)
    return (f'<span class="pq-rel pq-rel-{level}" title="{_e(MEANING[level])}">{WORDS[level]}</span>'
            f'<span class="pq-score"> 相关度 {hit.relevance:.2f}</span>')


def _copy_button(label: str, text: str, kind: str) -> str:
    return f'<button class="pq-copy" type="button" data-kind="{kind}" data-copy="{_e(text)}">{label}</button>'


def _feedback_buttons(target: str, rank: int = 0) -> str:
    """👍/👎 for one card (``target`` "card") or the whole answer ("answer"); app/ui.py records the click."""
    return (f'<span class="pq-fb" data-target="{target}" data-rank="{rank}">'
            '<button class="pq-vote" type="button" data-vote="up" title="这条回答有用">有用</button>'
            '<button class="pq-vote" type="button" data-vote="down" title="没用或不相关">没用</button></span>')


def render_card(hit: Hit, rank: int, query: str, document: Document | None = None, compact: bool = False,
                best: tuple[int, int] | None = None) -> str:
    """One result card: citation, relevance, highlighted verbatim text, units, document facts, source and actions
    (查看全文, 复制引用, 复制参考文献, 👍/👎; ``compact`` 对比 columns keep 查看全文 and the relevance only)."""
    units = []
    if hit.lead_units:
        units.append(f"<span><b>牵头单位：</b>{_e(hit.lead_units)}</span>")
    if hit.resp_units:
        units.append(f"<span><b>责任单位：</b>{_e(hit.resp_units)}</span>")
    level = relevance_level(hit)
    anchor = "" if compact else f' id="pq-card-{rank}"'  # 要点 markers link here; 对比 columns have none
    meta = [_e(m) for m in (hit.region, hit.issuer, hit.date) if m]
    validity = facts_mod.validity_badge(document)
    open_btn = (f'<button class="pq-open" type="button" data-doc="{_e(hit.doc_id)}" '
                f'data-pid="{_e(hit.provision_id)}">查看全文</button>')
    if compact:
        tail = f'<div class="pq-meta">{_relevance_badge(hit)}</div><div class="pq-actions">{open_btn}</div>'
    else:
        source = facts_mod.source_html(document)
        tail = (f'<div class="pq-meta">{" · ".join([*meta, _relevance_badge(hit)])}{validity}</div>'
                + (f'<div class="pq-src"><b>来源：</b>{source}</div>' if source else "")
                + f'<div class="pq-actions">{open_btn}'
                + _copy_button("复制引用", hit_citation(hit), "cite")
                + _copy_button("复制参考文献", reference_of(hit, document), "reference")
                + _feedback_buttons("card", rank) + "</div>")
    return (
        f'<article class="pq-card"{anchor} data-rank="{rank}" data-level="{level}">'
        f'<div class="pq-cite"><span class="pq-n">[{rank}]</span> {_e(hit_citation(hit))}</div>'
        f'<div class="pq-text">{highlight(hit.text, query, best)}</div>'
        + (f'<div class="pq-units">{"".join(units)}</div>' if units else "")
        + tail + "</article>"
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
    return (f'<div class="pq-empty"><p>没有找到与“{_e(clip(query, 80))}”相关的条款。</p>{why}'
            "<p>可以换个说法、减少筛选条件，或改用关键词检索。</p></div>")


def summary_copy_text(quotes: Sequence[Quote], hits: Sequence[Hit]) -> str:
    """The 要点 as text to paste: each quoted sentence followed by the citation of its provision."""
    return "\n".join(f"{q.text}（{hit_citation(hits[q.rank - 1])}）" for q in quotes)


def _took(elapsed: float | None) -> str:
    if elapsed is None:
        return ""
    return f" · 用时 {elapsed:.2f} 秒" if elapsed >= 1 else f" · 用时 {max(elapsed * 1000, 1):.0f} 毫秒"


def render_results(query: str, hits: Sequence[Hit], documents: dict[str, Document],
                   reason: str | None = None, warnings: Sequence[str] = (), elapsed: float | None = None,
                   request_id: str = "", notes: Sequence[str] = (), terms: Sequence[str] = ()) -> str:
    """The whole result pane: warnings, 要点 (strong hits only) or the no-answer note, the cards at or above the
    relevance threshold, then the weaker ones folded under 更多可能相关的条款 (or the empty state).

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
        shown, folded = split_levels(hits)
        n_strong = next((i for i, h in enumerate(hits) if relevance_level(h) != "strong"), len(hits))
        answers = list(hits[:n_strong])  # the 要点 quotes only hits presented as answers (a prefix of the ranking)
        if answers:
            quotes = summary_quotes(answers, match, ranked=[q for q in ranked if q.rank <= len(answers)])
            head = render_summary(answers, match, quotes)
            if head and quotes:
                head = head.replace("</section>", '<div class="pq-actions">'
                                    + _copy_button("复制要点", summary_copy_text(quotes, answers), "summary")
                                    + _feedback_buttons("answer") + "</div></section>", 1)
        elif shown and any(h.confident for _, h in shown):  # 可能相关 only: found, but not a direct answer
            head = f'<div class="pq-warn pq-possible">{_e(POSSIBLE_NOTE)}</div>'
        else:
            head = f'<div class="pq-warn pq-noanswer">{_e(NO_ANSWER_NOTE)}</div>'
        judged = any(h.relevance is not None for h in hits)  # an index without a relevance stage has no threshold
        count = (f'<div class="pq-count">共 {len(hits)} 条结果' + (f"：{len(shown)} 条达到相关阈值" if judged else "")
                 + (f"，{len(folded)} 条关联较弱已折叠" if folded and shown else "") + f"{_took(elapsed)}</div>")
        cards = "".join(render_card(h, i, match, documents.get(h.doc_id), best=best.get(i)) for i, h in shown)
        weak = "".join(render_card(h, i, match, documents.get(h.doc_id), best=best.get(i)) for i, h in folded)
        if weak and shown:  # the closest hits are the page's content when none is at the threshold: not folded
            weak = (f'<details class="pq-more"><summary>{MORE_LABEL}（{len(folded)} 条，相关性较弱）</summary>'
                    f"{weak}</details>")
        body = f"{warn}{head}{count}{cards}{weak}"
    return f'<div class="pq-pane" data-query="{_e(query)}" data-request="{_e(request_id)}">{body}</div>'


def render_compare(query: str, groups: Sequence[tuple[str, Sequence[Hit]]], documents: dict[str, Document],
                   by: str = "doc") -> str:
    """对比: one column per document or region, its best provisions for the same question with their relevance;
    "本文件未涉及" ("本地区的文件未涉及" by region) when none of them reaches the relevance threshold (the closest one
    is still offered, folded)."""
    if not groups:
        return render_empty(query, "没有可对比的文件。")
    cols = []
    for label, hits in groups:
        best = _best_per_card(hits, query)
        shown, folded = split_levels(hits)
        cards = "".join(render_card(h, i, query, documents.get(h.doc_id), compact=True, best=best.get(i))
                        for i, h in shown)
        if not hits:
            cards = '<div class="pq-empty">未找到相关条款。</div>'
        elif not shown:
            closest = "".join(render_card(h, i, query, documents.get(h.doc_id), compact=True, best=best.get(i))
                              for i, h in folded[:1])
            absent = "本文件未涉及" if by == "doc" else "本地区的文件未涉及"
            cards = (f'<div class="pq-empty pq-absent">{absent}：没有条款达到相关阈值。</div>'
                     f'<details class="pq-more"><summary>最接近的条款（关联较弱）</summary>{closest}</details>')
        cols.append(f'<section class="pq-col"><h3>{_e(label)}</h3>{cards}</section>')
    return f'<div class="pq-compare">{"".join(cols)}</div>'
