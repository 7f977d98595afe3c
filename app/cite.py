"""Citation strings for provisions: 《文件标题》（文号） › 章/节 › 条目, and GB/T 7714-style references to documents."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from index.types import Document, Hit

SEPARATOR = " › "


def citation_of(title: str | None, doc_number: str | None, path: Sequence[str], fallback: str = "") -> str:
    """``《title》（doc_number） › heading › … › item``; the （文号） part only when the document has one."""
    title = (title or fallback).strip()
    if not (title.startswith("《") and title.endswith("》")):
        title = f"《{title}》"
    head = f"{title}（{doc_number.strip()}）" if doc_number and doc_number.strip() else title
    return SEPARATOR.join([head, *(p.strip() for p in path if p and p.strip())])


def format_citation(doc: Document, path: Sequence[str]) -> str:
    """The citation of the provision at heading ``path`` of ``doc``."""
    return citation_of(doc.title, doc.doc_number, path, doc.id)


def hit_citation(hit: Hit) -> str:
    """The citation of a search hit."""
    return citation_of(hit.title, hit.doc_number, hit.path, hit.doc_id)


def document_url(document: Document | None) -> str | None:
    """The document's http(s) source URL (ingested metadata, else the first source that states one), or None."""
    if document is None:
        return None
    for url in (document.url, *(s.url for s in document.sources)):
        if url and url.lower().startswith(("http://", "https://")):
            return url
    return None


def reference_of(hit: Hit, document: Document | None = None, today: date | None = None) -> str:
    """A GB/T 7714-2015-style reference to the hit's document: ``责任者. 题名: 文号[Z]. 日期.``, or, with a source
    URL, ``…[EB/OL]. (发布日期)[引用日期]. URL.`` (the format for an online official document)."""
    today = today or date.today()
    title = (hit.title or hit.doc_id).strip("《》 ")
    issuer = (hit.issuer or "").replace(" ", "、").strip()
    head = f"{issuer}. " if issuer else ""
    number = f": {hit.doc_number}" if hit.doc_number else ""
    url = document_url(document)
    if url:
        issued = f"({hit.date})" if hit.date else ""
        return f"{head}{title}{number}[EB/OL]. {issued}[{today.isoformat()}]. {url}."
    return f"{head}{title}{number}[Z]." + (f" {hit.date}." if hit.date else "")
