"""Search results as the JSON of the CLI/API and as Markdown and CSV files for a memo: citations, 要点, filters,
relevance, 发文机关, date and 时效 included."""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence

from app.cite import hit_citation
from index.request import SearchResponse
from index.types import Document, Hit


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


FILTER_LABELS = (("doc", "文件"), ("region", "地区"), ("issuer", "发文机关"), ("year", "年份"), ("mode", "检索方式"),
                 ("k", "结果数"))


def _item_facts(hit: Hit, documents: Mapping[str, Document] | None) -> list[tuple[str, str]]:
    from app import facts
    from app.levels import relevance_text

    document = (documents or {}).get(hit.doc_id)
    return [("相关性", relevance_text(hit)), ("发文机关", hit.issuer or ""), ("日期", hit.date or ""),
            ("时效", facts.validity_text(document) if document is not None else ""),
            ("牵头单位", hit.lead_units or ""), ("责任单位", hit.resp_units or ""),
            ("原文链接", (facts.document_url(document) or "") if document is not None else "")]


def to_markdown(query: str, hits: Sequence[Hit], documents: Mapping[str, Document] | None = None,
                filters: Mapping | None = None, match: str | None = None) -> str:
    """A memo-ready Markdown export: the question and filters, the 要点 (answers only), then each provision quoted
    verbatim under its citation with its relevance, 发文机关, date and 时效."""
    from app.levels import strong_hits
    from app.summary import summary_quotes

    lines = [f"# 检索结果：{query}", ""]
    chosen = [f"{label}：{(documents or {}).get(v).title if name == 'doc' and (documents or {}).get(v) else v}"
              for name, label in FILTER_LABELS for v in [(filters or {}).get(name)] if v not in (None, "")]
    if chosen:
        lines += ["筛选与设置：" + "；".join(str(c) for c in chosen), ""]
    if not hits:
        lines.append("未找到相关条款。")
    answers = strong_hits(hits)
    n = next((i for i, h in enumerate(hits) if h not in answers), len(hits))
    quotes = summary_quotes(hits[:n], match or query) if n else []
    if quotes:
        lines += ["## 要点", ""] + [f"- {q.text} [{q.rank}]" for q in quotes] + ["", "以上均为原文摘录，请以原文为准。", ""]
    elif hits:
        lines += ["没有找到直接回答该问题的条款；以下是最接近的条款，请逐条核对。", ""]
    for rank, hit in enumerate(hits, start=1):
        lines += [f"## [{rank}] {hit_citation(hit)}", ""]
        lines += [f"> {line}" if line.strip() else ">" for line in hit.text.splitlines()] + [""]
        extra = [f"{k}：{v}" for k, v in _item_facts(hit, documents) if v]
        lines += [f"- {x}" for x in extra] + ([""] if extra else [])
    return "\n".join(lines).rstrip() + "\n"


CSV_FIELDS = ("query", "rank", "citation", "title", "doc_number", "path", "text", "lead_units", "resp_units",
              "region", "issuer", "date", "relevance", "level", "validity", "url", "score", "doc_id", "provision_id",
              "sources")


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(query: str, hits: Sequence[Hit], documents: Mapping[str, Document] | None = None) -> str:
    """A CSV export (one row per hit: citation, relevance and its level, 时效, source URL); cells starting like a
    formula are neutralised."""
    from app import facts
    from app.levels import WORDS, relevance_level

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_FIELDS)
    for rank, hit in enumerate(hits, start=1):
        d = hit_json(hit)
        document = (documents or {}).get(hit.doc_id)
        d.update(query=query, rank=rank, path=" › ".join(hit.path), sources="；".join(hit.sources),
                 level=WORDS[relevance_level(hit)], validity=facts.validity_text(document) if document else "",
                 url=(facts.document_url(document) or "") if document else "")
        writer.writerow([_cell(d[f]) for f in CSV_FIELDS])
    return buf.getvalue()
