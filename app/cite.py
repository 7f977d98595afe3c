"""Citation strings for provisions: 《文件标题》（文号） › 章/节 › 条目."""
from __future__ import annotations

from collections.abc import Sequence

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
