"""Search results as the JSON of the CLI/API and as Markdown and CSV files for a memo, citations included."""
from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from app.cite import hit_citation
from index.request import SearchResponse
from index.types import Hit


def hit_json(hit: Hit) -> dict:
    """One hit as JSON: the contract fields first, its display citation included."""
    d = hit.to_dict()
    return {"doc_id": d.pop("doc_id"), "provision_id": d.pop("provision_id"), "title": d.pop("title"),
            "citation": hit_citation(hit), **d}


def response_json(resp: SearchResponse, query: str | None = None, **extra) -> dict:
    """The one JSON shape of a search, on every surface: ``policyqa search --json``, each line of
    ``search --queries … --json`` (with its ``id`` in ``extra``), ``/api/search`` and Gradio's API."""
    return {**extra, "query": resp.query if query is None else query, "hits": [hit_json(h) for h in resp.hits],
            "found": resp.found, "warnings": list(resp.warnings), "reason": resp.reason, "notes": list(resp.notes)}


def to_markdown(query: str, hits: Sequence[Hit]) -> str:
    """A memo-ready Markdown export: each provision quoted verbatim under its citation."""
    lines = [f"# 检索结果：{query}", ""]
    if not hits:
        lines.append("未找到相关条款。")
    for rank, hit in enumerate(hits, start=1):
        lines += [f"## [{rank}] {hit_citation(hit)}", ""]
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
        d = hit_json(hit)
        d.update(query=query, rank=rank, path=" › ".join(hit.path), sources="；".join(hit.sources))
        writer.writerow([_cell(d[f]) for f in CSV_FIELDS])
    return buf.getvalue()
