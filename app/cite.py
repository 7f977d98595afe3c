"""Citation strings for provisions: 《文件标题》（文号） › 章/节 › 条目."""
from __future__ import annotations

from index.types import Document

SEPARATOR = " › "


def format_citation(doc: Document, path: tuple[str, ...]) -> str:
    """``《title》（doc_number） › heading › … › item``; the （文号） part only when the document has one."""
    title = (doc.title or doc.id).strip()
    if not (title.startswith("《") and title.endswith("》")):
        title = f"《{title}》"
    head = f"{title}（{doc.doc_number.strip()}）" if doc.doc_number and doc.doc_number.strip() else title
    return SEPARATOR.join([head, *(p.strip() for p in path if p and p.strip())])
