"""The page's handlers as plain methods (tests call them without a browser): search, filter facets, 对比, full text,
export, feedback and the shareable URL state; no ranking here (that is the searcher's)."""
from __future__ import annotations

import html as html_lib
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from app import export, render
from app.downloads import ExportStore
from app.feedback import FeedbackLog
from app.levels import relevance_level
from app.sessions import request_owner
from app.state import FILTERS, Kept, as_state as _as_state, url_state  # noqa: F401  (Kept re-exported)
from index.normalize import MAX_QUERY_CHARS, fold
from index.request import SearchRequest, SearchResponse
from index.types import Document

log = logging.getLogger(__name__)

ALL = ""  # the "no filter" value of every filter dropdown
MAX_K = 100  # the web surface never asks for more than this many results
COMPARE_GROUPS = 4  # columns in 对比 when the user picks none
COMPARE_K = 3  # provisions per column
#: Entries per filter dropdown. The page carries every choice: STARD's 58,649 documents made a 25 MB page that
#: took Gradio's start-up check over 3 s (serve then refused to start). Beyond this the list is cut and the
#: dropdown also accepts a typed value (an id, a region…), checked against the index like any other.
MAX_CHOICES = 500
INTERNAL = "检索时出现内部错误，请稍后再试或联系管理员。"


class SearcherLike(Protocol):
    """What the app needs from ``index.search.Searcher``."""

    documents: dict[str, Document]

    def run(self, request: SearchRequest) -> SearchResponse:
        """Answer a validated request."""
        ...


def _issuers(document: Document) -> list[str]:
    """The bodies a document names as its issuers ("中共湖南省委 湖南省人民政府" is two), each a filter choice."""
    return [p for p in re.split(r"[\s、，,；;]+", document.issuer or "") if p]


class SearchApp:
    """The handlers behind the UI."""

    def __init__(self, searcher: SearcherLike, exports: ExportStore | None = None,
                 feedback: FeedbackLog | None = None):
        self.searcher = searcher
        self.documents: dict[str, Document] = dict(searcher.documents)
        # folded once: the facets re-filter every document at each filter change (STARD: 58,649 of them)
        self._folded = {d.id: (fold(d.region or ""), fold(d.issuer or "")) for d in self.documents.values()}
        self._exports = exports
        self.feedback = feedback or FeedbackLog()

    @property
    def exports(self) -> ExportStore:
        """Where exports are written (app/downloads.py); made at the first export when none was given."""
        if self._exports is None:
            self._exports = ExportStore()
        return self._exports

    # ---------------------------------------------------------------- choices
    def _matches(self, d: Document, doc=None, region=None, issuer=None, year=None) -> bool:
        """The searcher's filter rule (index/search.py ``_filter_mask``): same id, folded substring, same year."""
        folded_region, folded_issuer = self._folded[d.id]
        return ((not doc or d.id == doc) and (not region or (d.region is not None and fold(region) in folded_region))
                and (not issuer or (d.issuer is not None and fold(issuer) in folded_issuer))
                and (not year or str(d.year) == str(year)))

    def filter_choices(self, doc: str | None = None, region: str | None = None, issuer: str | None = None,
                       year: str | None = None) -> dict[str, list[tuple[str, str]]]:
        """Dropdown choices (label, value), "全部" first: for each filter, only the values that some document matching
        the *other* filters has, each with how many documents that is ("萍乡市（1 份）")."""
        chosen = dict(doc=doc, region=region, issuer=issuer, year=year)

        def pool(name: str) -> list[Document]:
            others = {k: v for k, v in chosen.items() if k != name}
            return [d for d in self.documents.values() if self._matches(d, **others)]

        def counted(values: dict[str, int], order) -> list[tuple[str, str]]:
            keys = sorted(values, key=order)[:MAX_CHOICES]
            return [(f"{v}（{values[v]} 份）", v) for v in keys]

        docs = sorted(pool("doc"), key=lambda d: (d.title, d.id))[:MAX_CHOICES]
        regions: dict[str, int] = {}
        for d in pool("region"):
            if d.region:
                regions[d.region] = regions.get(d.region, 0) + 1
        by_issuer: dict[str, int] = {}  # folded issuer string -> documents (far fewer strings than documents)
        bodies: set[str] = set()
        for d in pool("issuer"):
            if d.issuer:
                by_issuer[self._folded[d.id][1]] = by_issuer.get(self._folded[d.id][1], 0) + 1
                bodies.update(_issuers(d))
        # a body matches every document whose issuer contains it, as the searcher's filter does
        issuers = {b: sum(n for text, n in by_issuer.items() if fold(b) in text) for b in sorted(bodies)[:MAX_CHOICES]}
        years: dict[str, int] = {}
        for d in pool("year"):
            if d.year:
                years[str(d.year)] = years.get(str(d.year), 0) + 1
        everything = [("全部", ALL)]
        return {
            "doc": everything + [(render.clip(d.title, 60) + (f"（{d.doc_number}）" if d.doc_number else ""), d.id)
                                 for d in docs],
            "region": everything + counted(regions, lambda v: v),
            "issuer": everything + counted(issuers, lambda v: v),
            "year": everything + counted(years, lambda v: -int(v)),
        }

    def choices_cut(self, name: str) -> bool:
        """Whether the ``name`` dropdown ("doc", "region", "issuer") lists fewer entries than the index has."""
        values = {"doc": self.documents.keys(), "region": {d.region for d in self.documents.values() if d.region},
                  "issuer": {b for d in self.documents.values() for b in _issuers(d)}}[name]
        return len(values) > MAX_CHOICES

    # ---------------------------------------------------------------- search
    def query(self, query: Any, k: Any = 10, mode: Any = "hybrid", doc: Any = None, region: Any = None,
              issuer: Any = None, year: Any = None) -> SearchResponse:
        """Validate the request (``SearchRequest.parse``, k capped at ``MAX_K``) and ask the searcher."""
        return self.searcher.run(SearchRequest.parse(query, k, mode, doc, region, issuer, year, max_k=MAX_K))

    def answer(self, query: str, *args: Any) -> SearchResponse:
        """The response for ``query``; bad input and internal errors become the reason, never a trace."""
        try:
            return self.query(query, *args)
        except ValueError as exc:
            return SearchResponse((), (), str(exc), query=query or "")
        except Exception:  # the page must never show a stack trace; the log keeps it
            log.exception("search failed for %r", (query or "")[:200])
            return SearchResponse((), (), INTERNAL, query=query or "")

    def search_view(self, query: str, mode: str = "hybrid", k: int = 10, doc: str | None = None,
                    region: str | None = None, issuer: str | None = None, year: Any = None) -> tuple[str, Kept]:
        """The result pane HTML and what export and feedback need of it (question, filters, hits, 要点)."""
        query = query or ""
        t0 = time.perf_counter()
        resp = self.answer(query, k, mode, doc, region, issuer, year)
        elapsed = time.perf_counter() - t0
        warnings = [w for w in resp.warnings if "截断" not in w]
        if len(query) > MAX_QUERY_CHARS:  # said in the page's words, with the numbers a reader checks
            warnings.insert(0, f"问题过长（{len(query):,} 字），已截断至 {MAX_QUERY_CHARS:,} 字：只按前 "
                               f"{MAX_QUERY_CHARS:,} 字检索。")
        from index.query_terms import ENGLISH_NOTE

        # an English question's note, in the page's words (no library names to the reader); the words listed and
        # counted are the search's own note's (index.query_terms.translation_note)
        notes = ["英文问题已按英汉词典对照以下中文词检索：" + n[len(ENGLISH_NOTE):] if n.startswith(ENGLISH_NOTE) else n
                 for n in resp.notes]
        html = render.render_results(query, resp.hits, self.documents, reason=resp.reason, warnings=warnings,
                                     notes=notes, terms=resp.terms, elapsed=elapsed,
                                     request_id=uuid.uuid4().hex[:12])
        filters = {"mode": mode, "k": k, "doc": doc, "region": region, "issuer": issuer, "year": year}
        return html, Kept(query, resp.hits, filters, resp.terms)

    def api_search(self, query: str, k: int = 10, mode: str = "hybrid", doc: str | None = None,
                   region: str | None = None, issuer: str | None = None, year: int | None = None) -> dict:
        """The documented web API: the JSON of ``policyqa search --json``; bad input raises gr.Error."""
        import gradio as gr

        try:
            resp = self.query(query, k, mode, doc, region, issuer, year)
        except ValueError as exc:
            raise gr.Error(str(exc), title="请求有误") from None
        return export.response_json(resp)

    # ---------------------------------------------------------------- shareable state
    url_state = staticmethod(url_state)

    # ---------------------------------------------------------------- full text
    def document_view(self, doc_id: str | None, provision_id: str | None = None, query: str = "") -> str:
        """The whole indexed document ``doc_id`` (looked up in the index only), scrolled to ``provision_id``."""
        document = self.documents.get(doc_id or "")
        if document is None:
            return '<div class="pq-empty">请在检索结果中点击“查看全文”，或在上方选择一个文件。</div>' if not doc_id \
                else '<div class="pq-empty">索引中没有这个文件。</div>'
        return render.render_document(document, provision_id, query)

    # ---------------------------------------------------------------- compare
    def compare_view(self, query: str, by: str = "doc", selected: Sequence[str] = (), mode: str = "hybrid",
                     k: int = COMPARE_K) -> str:
        """对比: the same question per document (or per region), its best ``k`` provisions each with their relevance,
        side by side; a column whose provisions all fall below the threshold says so (render_compare)."""
        query = query or ""
        if not query.strip():
            return render.render_empty(query, None)
        try:
            groups = []
            for key in [s for s in selected if s] or self._top_groups(query, by, mode):
                if by == "doc" and key not in self.documents:
                    continue
                resp = self.query(query, k, mode, *((key, None) if by == "doc" else (None, key)))
                groups.append((self.documents[key].title if by == "doc" else key, tuple(resp.hits)))
        except ValueError as exc:
            return render.render_empty(query, str(exc))
        except Exception:  # as in search: a message for the page, the trace for the log
            log.exception("compare failed for %r", query[:200])
            return render.render_empty(query, "对比时出现内部错误，请稍后再试。")
        return render.render_compare(query, groups, self.documents, by)

    def _top_groups(self, query: str, by: str, mode: str) -> list[str]:
        """The documents (or regions) that the overall best hits come from, in rank order."""
        keys: list[str] = []
        for hit in self.query(query, 30, mode).hits:
            key = hit.doc_id if by == "doc" else (self.documents[hit.doc_id].region if hit.doc_id in self.documents
                                                  else hit.region)
            if key and key not in keys:
                keys.append(key)
        return keys[:COMPARE_GROUPS]

    # ---------------------------------------------------------------- export
    def export_files(self, state: Mapping | tuple | None, owner: str = "") -> list[str]:
        """Write the shown results as Markdown and CSV (要点, filters, per item relevance, 发文机关, date, 时效), once,
        for ``owner`` only; both paths.  ValueError when there is nothing to export."""
        state = _as_state(state)
        query, hits = state["query"], tuple(state["hits"])
        if not hits:
            raise ValueError("没有可导出的结果：请先检索。")
        stem = "policyqa-" + (re.sub(r"[^\w\u4e00-\u9fff]+", "_", query)[:30].strip("_") or "results")
        match = " ".join([query, *state.get("terms", ())])
        extra = dict(documents=self.documents, filters=state.get("filters") or {}, match=match)
        files = {f"{stem}.md": export.to_markdown(query, hits, **extra).encode("utf-8"),
                 # BOM: Excel then reads the Chinese
                 f"{stem}.csv": export.to_csv(query, hits, documents=self.documents).encode("utf-8-sig")}
        return [str(p) for p in self.exports.add(owner, files)]

    def export_links(self, state, request=None) -> str:
        """The page's export: links (page-relative) to the files, downloadable only by this browser session; a
        sentence in Chinese when there is nothing to export."""
        try:
            paths = self.export_files(state, request_owner(request) if request is not None else "")
        except ValueError as exc:
            return f'<div class="pq-warn">{html_lib.escape(str(exc))}</div>'
        links = "".join(f'<li><a href="{html_lib.escape(self.exports.url(Path(p)))}" '
                        f'download="{html_lib.escape(Path(p).name)}">{html_lib.escape(Path(p).name)}</a></li>'
                        for p in paths)
        return f'<ul class="pq-downloads">{links}</ul>'

    def document_download(self, doc_id: str | None, request=None) -> str:
        """A link to the indexed text of ``doc_id`` (looked up in the index, never a path), for this session only."""
        document = self.documents.get(doc_id or "")
        if document is None:
            return '<div class="pq-warn">索引中没有这个文件。</div>'
        name = re.sub(r"[^\w\u4e00-\u9fff（）()—-]+", "_", document.title)[:60] or "document"
        owner = request_owner(request) if request is not None else ""
        path = self.exports.add(owner, {f"{name}.txt": document.text.encode("utf-8")})[0]
        return (f'<ul class="pq-downloads"><li><a href="{html_lib.escape(self.exports.url(path))}" '
                f'download="{html_lib.escape(path.name)}">{html_lib.escape(path.name)}</a></li></ul>')

    # ---------------------------------------------------------------- feedback
    def record_feedback(self, state, target: str, rank: Any, vote: str) -> str:
        """Append one 👍/👎 (on the whole answer or on card ``rank``) to the feedback log; the message to show."""
        state = _as_state(state)
        hits = tuple(state["hits"])
        if vote not in ("up", "down") or target not in ("answer", "card") or not hits:
            return "无法记录这条反馈：请先检索。"
        try:
            n = int(rank)
        except (TypeError, ValueError):
            n = 0
        if target == "card" and not 1 <= n <= len(hits):
            return "无法记录这条反馈。"
        shown = [h for h in hits if relevance_level(h) == "strong"] if target == "answer" else [hits[n - 1]]
        self.feedback.add(state["query"], state.get("filters") or {}, target, vote, shown,
                          rank=n if target == "card" else None)
        return "已记录反馈，谢谢。"
