"""Search results as the JSON of the CLI/API and as Markdown and CSV files for a memo, citations included."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from index.types import Hit


def hits_json(query: str, hits: Sequence[Hit], warnings: Sequence[str] = (), reason: str | None = None,
              notes: Sequence[str] = ()) -> dict:
    """The JSON of ``policyqa search --json``, also returned by the web API: query, hits, warnings, reason, notes."""
    return {"query": query, "hits": [h.to_dict() for h in hits], "warnings": list(warnings), "reason": reason,
            "notes": list(notes)}


def to_markdown(query: str, hits: Sequence[Hit]) -> str:
    """A memo-ready Markdown export: each provision quoted verbatim under its citation."""
    lines = [f"# 检索结果：{query}", ""]
    if not hits:
        lines.append("未找到相关条款。")
    for rank, hit in enumerate(hits, start=1):
        lines += [f"## [{rank}] {hit.citation}", ""]
        lines += [f"> {line}" if line.strip() else ">" for line in hit.text.splitlines()] + [""]
        extra = [f"{k}：{v}" for k, v in (("牵头单位", hit.lead_units), ("责任单位", hit.resp_units),
                                         ("来源", "；".join(hit.sources))) if v]
        lines += [f"- {x}" for x in extra] + ([""] if extra else [])
    return "\n".join(lines).rstrip() + "\n"


CSV_FIELDS = ("query", "rank", "citation", "title", "doc_number", "path", "text", "lead_units", "resp_units",
              "region", "issuer", "date", "score", "doc_id", "provision_id", "sources")


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(query: str, hits: Sequence[Hit]) -> str:
    """A CSV export (one row per hit, citation included); cells starting like a formula are neutralised."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_FIELDS)
    for rank, hit in enumerate(hits, start=1):
        d = hit.to_dict()
        d.update(query=query, rank=rank, path=" › ".join(hit.path), sources="；".join(hit.sources))
        writer.writerow([_cell(d[f]) for f in CSV_FIELDS])
    return buf.getvalue()
