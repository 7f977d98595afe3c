"""The Gradio app (Chinese UI): ask, read cited provisions in context, compare documents, export; no ranking here."""
from __future__ import annotations

import html as html_lib
import logging
import re
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import gradio as gr

from app import export, render
from app.downloads import ExportStore
from app.sessions import request_owner
from index.request import SearchRequest, SearchResponse
from index.types import Document, Hit

log = logging.getLogger(__name__)

EXAMPLES = ["哪些条款涉及医保异地结算", "长株潭地区如何推进交通一体化", "对接大湾区承接产业转移有哪些举措",
            "在大湾区看病能直接用医保报销不"]
MODES = [("混合（推荐）", "hybrid"), ("语义", "dense"), ("关键词", "bm25")]
ALL = ""  # the "no filter" value of every filter dropdown
MAX_K = 100  # the web surface never asks for more than this many results
COMPARE_GROUPS = 4  # columns in 对比 when the user picks none
#: Entries per filter dropdown. The page carries every choice: STARD's 58,649 documents made a 25 MB page that
#: took Gradio's start-up check over 3 s (serve then refused to start). Beyond this the list is cut and the
#: dropdown also accepts a typed value (an id, a region…), checked against the index like any other.
MAX_CHOICES = 500


class SearcherLike(Protocol):
    """What the app needs from ``index.search.Searcher``."""

    documents: dict[str, Document]

    def run(self, request: SearchRequest) -> SearchResponse:
        """Answer a validated request."""
        ...


class SearchApp:
    """The handlers behind the UI, as plain methods so tests can call them without a browser."""

    def __init__(self, searcher: SearcherLike, exports: ExportStore | None = None):
        self.searcher = searcher
        self.documents: dict[str, Document] = dict(searcher.documents)
        self._exports = exports

    @property
    def exports(self) -> ExportStore:
        """Where exports are written (app/downloads.py); made at the first export when none was given."""
        if self._exports is None:
            self._exports = ExportStore()
        return self._exports

    # ---------------------------------------------------------------- choices
    def filter_choices(self) -> dict[str, list[tuple[str, str]]]:
        """Dropdown choices (label, value) for document, region, issuer and year, "全部" first."""
        docs = sorted(self.documents.values(), key=lambda d: (d.title, d.id))
        regions = sorted({d.region for d in docs if d.region})
        issuers = sorted({d.issuer for d in docs if d.issuer})
        years = sorted({str(d.year) for d in docs if d.year}, reverse=True)
        everything = [("全部", ALL)]
        return {
            "doc": everything + [(render._clip(d.title, 60) + (f"（{d.doc_number}）" if d.doc_number else ""), d.id)
                                 for d in docs[:MAX_CHOICES]],
            "region": everything + [(r, r) for r in regions[:MAX_CHOICES]],
            "issuer": everything + [(i, i) for i in issuers[:MAX_CHOICES]],
            "year": everything + [(y, y) for y in years[:MAX_CHOICES]],
        }

    def choices_cut(self, name: str) -> bool:
        """Whether the ``name`` dropdown ("doc", "region", "issuer") lists fewer entries than the index has."""
        values = {"doc": self.documents.keys(), "region": {d.region for d in self.documents.values() if d.region},
                  "issuer": {d.issuer for d in self.documents.values() if d.issuer}}[name]
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
            return SearchResponse((), (), "检索时出现内部错误，请稍后再试或联系管理员。", query=query or "")

    def search_view(self, query: str, mode: str = "hybrid", k: int = 10, doc: str | None = None,
                    region: str | None = None, issuer: str | None = None, year: Any = None
                    ) -> tuple[str, tuple[str, tuple[Hit, ...]]]:
        """The result pane HTML and the (query, hits) kept for export."""
        query = query or ""
        t0 = time.perf_counter()
        resp = self.answer(query, k, mode, doc, region, issuer, year)
        html = render.render_results(query, resp.hits, self.documents, reason=resp.reason, warnings=resp.warnings,
                                     notes=resp.notes, terms=resp.terms, elapsed=time.perf_counter() - t0,
                                     request_id=uuid.uuid4().hex[:12])
        return html, (query, resp.hits)

    def api_search(self, query: str, k: int = 10, mode: str = "hybrid", doc: str | None = None,
                   region: str | None = None, issuer: str | None = None, year: int | None = None) -> dict:
        """The documented web API: the JSON of ``policyqa search --json``; bad input raises gr.Error."""
        try:
            resp = self.query(query, k, mode, doc, region, issuer, year)
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        return export.response_json(resp)

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
                     k: int = 2) -> str:
        """对比: the same question per document (or per region), best ``k`` provisions each, side by side."""
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
        return render.render_compare(query, groups, self.documents)

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
    def export_files(self, state: tuple[str, Sequence[Hit]] | None, owner: str = "") -> list[str]:
        """Write the shown results as Markdown and CSV (with citations), once, for ``owner`` only; both paths."""
        query, hits = state or ("", ())
        if not hits:
            raise gr.Error("没有可导出的结果：请先检索。")
        stem = "policyqa-" + (re.sub(r"[^\w\u4e00-\u9fff]+", "_", query)[:30].strip("_") or "results")
        files = {f"{stem}.md": export.to_markdown(query, hits).encode("utf-8"),
                 # BOM: Excel then reads the Chinese
                 f"{stem}.csv": export.to_csv(query, hits).encode("utf-8-sig")}
        return [str(p) for p in self.exports.add(owner, files)]

    def export_links(self, state: tuple[str, Sequence[Hit]] | None, request: gr.Request | None = None) -> str:
        """The page's export: links (page-relative) to the files, downloadable only by this browser session."""
        paths = self.export_files(state, request_owner(request) if request is not None else "")
        links = "".join(f'<li><a href="{html_lib.escape(self.exports.url(Path(p)))}" '
                        f'download="{html_lib.escape(Path(p).name)}">{html_lib.escape(Path(p).name)}</a></li>'
                        for p in paths)
        return f'<ul class="pq-downloads">{links}</ul>'


# Clicks inside the result HTML: 查看全文 buttons become a `click` event carrying the ids; [n] markers scroll to cards.
RESULTS_JS = """
element.addEventListener('click', (e) => {
  const open = e.target.closest('button.pq-open');
  if (open) { trigger('click', {doc: open.dataset.doc, pid: open.dataset.pid}); return; }
  const ref = e.target.closest('a.pq-ref');
  if (ref) {
    e.preventDefault();
    const card = element.querySelector('#pq-card-' + ref.dataset.card);
    if (card) { card.scrollIntoView({block: 'start'}); card.classList.add('pq-flash');
                setTimeout(() => card.classList.remove('pq-flash'), 1500); }
  }
});
"""
# The document pane scrolls to the highlighted provision whenever it is (re)rendered; outline links scroll too.
DOCUMENT_JS = """
const go = () => {
  const t = element.querySelector('.pq-target'); if (t) t.scrollIntoView({block: 'center'});
  const h = element.querySelectorAll('.pq-outline .pq-here'); if (h.length) h[h.length - 1].scrollIntoView({block: 'nearest'});
};
setTimeout(go, 100);
watch('value', () => setTimeout(go, 100));
element.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-anchor]');
  if (a) { e.preventDefault(); const t = element.querySelector('#' + a.dataset.anchor);
           if (t) t.scrollIntoView({block: 'start'}); }
});
"""


def build_ui(searcher: SearcherLike | SearchApp, concurrency: int = 4) -> gr.Blocks:
    """The Blocks app over ``searcher`` (or its ``SearchApp``); every event runs up to ``concurrency`` at once."""
    app = searcher if isinstance(searcher, SearchApp) else SearchApp(searcher)
    choices = app.filter_choices()
    limit = {"concurrency_limit": concurrency}
    with gr.Blocks(title="政策条款检索", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("## 政策条款检索\n输入问题，查找相关政策条款；每条结果注明出处，可查看全文、对比各文件、导出。")
        with gr.Row(equal_height=True):
            question = gr.Textbox(label="问题", placeholder="例如：哪些条款涉及医保异地结算", scale=5,
                                  elem_id="pq-question", max_length=2000, autofocus=True)
            ask = gr.Button("检索", variant="primary", scale=1, elem_id="pq-ask")
        examples = gr.Examples(EXAMPLES, inputs=question, label="示例问题", api_visibility="private")
        with gr.Accordion("筛选与设置", open=False, elem_id="pq-filters"):
            with gr.Row():
                f_doc = gr.Dropdown(choices["doc"], value=ALL, label="文件", elem_id="pq-f-doc", scale=3,
                                    allow_custom_value=app.choices_cut("doc"))
                f_region = gr.Dropdown(choices["region"], value=ALL, label="地区", elem_id="pq-f-region",
                                       allow_custom_value=app.choices_cut("region"))
                f_issuer = gr.Dropdown(choices["issuer"], value=ALL, label="发文机关", elem_id="pq-f-issuer",
                                       allow_custom_value=app.choices_cut("issuer"))
                f_year = gr.Dropdown(choices["year"], value=ALL, label="年份", elem_id="pq-f-year")
            with gr.Row():
                mode = gr.Radio(MODES, value="hybrid", label="检索方式", elem_id="pq-mode")
                k = gr.Slider(1, 30, value=10, step=1, label="结果数", elem_id="pq-k")
        kept = gr.State(("", ()))
        with gr.Tabs(elem_id="pq-tabs") as tabs:
            with gr.Tab("检索结果", id="results", elem_id="pq-tab-results"):
                results = gr.HTML(render.render_empty("", None), js_on_load=RESULTS_JS, elem_id="pq-results")
                with gr.Row():
                    export_btn = gr.Button("导出 Markdown / CSV", size="sm", elem_id="pq-export")
                # links to the server's own export route (app/sessions.py), not gr.File: Gradio would copy
                # each file again into its cache and serve it to anyone holding the link
                files = gr.HTML("", label="导出文件", elem_id="pq-files", visible=False)
            with gr.Tab("全文", id="document", elem_id="pq-tab-document"):
                doc_pick = gr.Dropdown(choices["doc"][1:], value=None, label="选择文件", elem_id="pq-doc-pick",
                                       allow_custom_value=app.choices_cut("doc"))
                document = gr.HTML(app.document_view(None), js_on_load=DOCUMENT_JS, elem_id="pq-document")
            with gr.Tab("对比", id="compare", elem_id="pq-tab-compare"):
                with gr.Row():
                    by = gr.Radio([("按文件", "doc"), ("按地区", "region")], value="doc", label="对比维度",
                                  elem_id="pq-by")
                    picked = gr.Dropdown(choices["doc"][1:], multiselect=True, value=[], scale=3,
                                         allow_custom_value=app.choices_cut("doc"),
                                         label="对比的文件（不选则取最相关的几份）", elem_id="pq-compare-docs")
                    run_compare = gr.Button("对比", variant="primary", elem_id="pq-run-compare")
                compare = gr.HTML("", js_on_load=RESULTS_JS, elem_id="pq-compare")

        filters = [mode, k, f_doc, f_region, f_issuer, f_year]
        hide_files = dict(fn=lambda: gr.HTML(value="", visible=False), outputs=files, api_visibility="private")
        gr.on([question.submit, ask.click, mode.change, f_doc.change, f_region.change, f_issuer.change,
               f_year.change], app.search_view, inputs=[question, *filters], outputs=[results, kept],
              api_visibility="private", **limit).then(**hide_files)
        # a click on an example question fills the box and runs the search with the current filters
        examples.load_input_event.then(app.search_view, inputs=[question, *filters], outputs=[results, kept],
                                       api_visibility="private", **limit).then(**hide_files)
        def export_click(kept_, request: gr.Request):
            return gr.HTML(value=app.export_links(kept_, request), visible=True)

        export_btn.click(export_click, inputs=kept, outputs=files, api_visibility="private", **limit)

        def open_document(evt: gr.EventData, query: str):
            doc_id, pid = getattr(evt, "doc", None), getattr(evt, "pid", None)
            html = app.document_view(doc_id, pid, query)
            pick = doc_id if doc_id in app.documents else None
            return html, gr.Dropdown(value=pick), gr.Tabs(selected="document")

        for pane in (results, compare):
            pane.click(open_document, inputs=question, outputs=[document, doc_pick, tabs],
                       api_visibility="private", **limit)
        doc_pick.input(lambda d: app.document_view(d), inputs=doc_pick, outputs=document,
                       api_visibility="private", **limit)
        by.change(lambda b: gr.Dropdown(choices=choices["doc" if b == "doc" else "region"][1:], value=[]),
                  inputs=by, outputs=picked, api_visibility="private")
        run_compare.click(app.compare_view, inputs=[question, by, picked, mode], outputs=compare,
                          api_visibility="private", **limit)
        gr.api(app.api_search, api_name="search", concurrency_limit=concurrency,
               api_description="检索政策条款。返回与 `policyqa search --json` 相同的 JSON："
                               "{query, hits: [Hit.to_dict()…], warnings, reason}。")
    return demo
