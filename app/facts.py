"""What the page says about a document: its facts panel (title, 文号, 发文机关, date, region, source, 时效), the
时效 badge on cards, and the source line — never an internal file name or a path."""
from __future__ import annotations

from datetime import date

from app.cite import document_url  # noqa: F401  (export uses facts.document_url)
from app.highlight import _e
from index.types import Document
from index.validity import Validity, find_validity

_CACHE: dict[tuple[str, str, int], Validity | None] = {}
_CACHE_MAX = 4096


def validity(document: Document | None) -> Validity | None:
    """The period the document's text states (index/validity.py), cached per document."""
    if document is None:
        return None
    key = (document.id, document.title, len(document.text))
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = find_validity(document.title, document.text, document.date)
    return _CACHE[key]


def validity_text(document: Document | None, today: date | None = None) -> str:
    """"规划期 2020—2025 年（已届满）", or "文中未注明有效期" when the text states no period."""
    found = validity(document)
    return found.label(today or date.today()) if found else "文中未注明有效期"


def validity_badge(document: Document | None, today: date | None = None) -> str:
    """The 时效 on a card: the stated period and its state, coloured (expired: grey; in force: green)."""
    if document is None:
        return ""
    found = validity(document)
    if found is None:
        return ' · <span class="pq-valid pq-valid-none">时效：文中未注明</span>'
    state = found.state(today or date.today())
    cls = {"已届满": "expired", "未开始": "future"}.get(state, "current")
    return (f' · <span class="pq-valid pq-valid-{cls}" title="{_e(found.evidence[:120])}">'
            f"时效：{_e(found.label(today or date.today()))}</span>")


def source_html(document: Document | None, download: bool = False) -> str:
    """The 来源 line: the original's URL when known (else says it is not stated), how many renderings the text was
    merged from, and with ``download`` a button for the indexed text (app/handlers.py writes it for this session
    only); never a file name or a path."""
    if document is None:
        return ""
    url = document_url(document)
    link = (f'<a class="pq-url" href="{_e(url)}" target="_blank" rel="noopener noreferrer">原文链接</a>'
            f'<span class="pq-host">（{_e(url.split("/")[2])}）</span>' if url else
            '<span class="pq-nourl">原文链接未注明</span>')
    kinds = "、".join(dict.fromkeys(s.format.upper() for s in document.sources)) or "文本"
    merged = f'<span class="pq-kind"> · 据 {len(document.sources) or 1} 份 {_e(kinds)} 原件整理</span>'
    button = (f' <button class="pq-dl" type="button" data-doc="{_e(document.id)}">下载全文（TXT）</button>'
              if download else "")
    return link + merged + button


def facts_panel(document: Document, today: date | None = None) -> str:
    """The facts of one document as a definition list (the full-text view opens with it)."""
    rows = [("标题", document.title), ("文号", document.doc_number or "未注明"),
            ("发文机关", document.issuer or "未注明"), ("成文/发布日期", document.date or "未注明"),
            ("地区", document.region or "未注明"), ("时效", validity_text(document, today))]
    items = "".join(f"<dt>{k}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    items += f"<dt>来源</dt><dd>{source_html(document, download=True)}</dd>"
    return f'<dl class="pq-facts">{items}</dl>'
