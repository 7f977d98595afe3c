"""The Gradio app (Chinese UI): ask, read cited provisions by relevance, open them in context, compare documents,
copy citations, share a result by its URL, vote, export; the handlers are in app/handlers.py, no ranking here."""
from __future__ import annotations

import gradio as gr

from app import render
from app.handlers import (  # noqa: F401  (re-exported: callers and tests import them from app.ui)
    ALL, COMPARE_GROUPS, MAX_CHOICES, MAX_K, Kept, SearchApp, SearcherLike)
from app.page_js import DOCUMENT_JS, RESULTS_JS, URL_JS

EXAMPLES = ["哪些条款涉及医保异地结算", "长株潭地区如何推进交通一体化", "对接大湾区承接产业转移有哪些举措",
            "在大湾区看病能直接用医保报销不"]
MODES = [("混合（推荐）", "hybrid"), ("语义", "dense"), ("关键词", "bm25")]
FILTER_NAMES = ("doc", "region", "issuer", "year")


def build_ui(searcher: SearcherLike | SearchApp, concurrency: int = 4) -> gr.Blocks:
    """The Blocks app over ``searcher`` (or its ``SearchApp``); every event runs up to ``concurrency`` at once."""
    app = searcher if isinstance(searcher, SearchApp) else SearchApp(searcher)
    choices = app.filter_choices()
    limit = {"concurrency_limit": concurrency}
    private = {"api_visibility": "private"}
    with gr.Blocks(title="政策条款检索", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown("## 政策条款检索\n输入问题，查找相关政策条款；每条结果注明出处和相关程度，可查看全文、复制引用、"
                    "对比各文件、导出。")
        with gr.Row(equal_height=False):
            # no max_length: the browser would cut a long question silently; the engine cuts it and the page says so
            question = gr.Textbox(label="问题", placeholder="例如：哪些条款涉及医保异地结算", scale=5, lines=1,
                                  max_lines=4, elem_id="pq-question", autofocus=True)
            ask = gr.Button("检索", variant="primary", scale=1, min_width=80, elem_id="pq-ask")
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
        kept = gr.State(Kept("", ()))
        with gr.Tabs(elem_id="pq-tabs") as tabs:
            with gr.Tab("检索结果", id="results", elem_id="pq-tab-results"):
                with gr.Row(elem_id="pq-export-row"):
                    export_btn = gr.Button("导出 Markdown / CSV", size="sm", elem_id="pq-export", scale=0,
                                           min_width=160)
                    # links to the server's own export route (app/sessions.py), not gr.File: Gradio would copy
                    # each file again into its cache and serve it to anyone holding the link
                    files = gr.HTML("", elem_id="pq-files", visible=False)
                    fb_status = gr.HTML("", elem_id="pq-fb-status")
                results = gr.HTML(render.render_empty("", None), js_on_load=RESULTS_JS, elem_id="pq-results")
            with gr.Tab("全文", id="document", elem_id="pq-tab-document"):
                doc_pick = gr.Dropdown(choices["doc"][1:], value=None, label="选择文件", elem_id="pq-doc-pick",
                                       allow_custom_value=app.choices_cut("doc"))
                doc_files = gr.HTML("", elem_id="pq-doc-files")
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

        dropdowns = [f_doc, f_region, f_issuer, f_year]
        filters = [mode, k, *dropdowns]
        after = dict(fn=lambda: (gr.HTML(value="", visible=False), ""), outputs=[files, fb_status], **private)
        url = dict(fn=None, inputs=[question, *filters], js=URL_JS, **private)

        def facets(doc, region, issuer, year) -> list:
            fresh = app.filter_choices(doc, region, issuer, year)
            return [gr.Dropdown(choices=fresh[name]) for name in FILTER_NAMES]

        def filter_search(query, mode_, k_, doc, region, issuer, year):
            html, kept_ = app.search_view(query, mode_, k_, doc, region, issuer, year)
            return html, kept_, *facets(doc, region, issuer, year)

        # the filters and k re-run the search as soon as they change (k when the slider is let go); a filter also
        # narrows the other filters' choices to the combinations that exist, with their counts
        gr.on([question.submit, ask.click, mode.input, k.release], app.search_view, inputs=[question, *filters],
              outputs=[results, kept], **private, **limit).then(**after).then(**url)
        gr.on([d.input for d in dropdowns], filter_search, inputs=[question, *filters],
              outputs=[results, kept, *dropdowns], **private, **limit).then(**after).then(**url)
        # a click on an example question fills the box and runs the search with the current filters
        examples.load_input_event.then(app.search_view, inputs=[question, *filters], outputs=[results, kept],
                                       **private, **limit).then(**after).then(**url)

        def from_url(request: gr.Request):
            """A shared link (``?q=…&k=…&region=…``) fills the form and runs its search."""
            state = app.url_state(dict(getattr(request, "query_params", {}) or {}))
            if state is None:
                return [gr.skip()] * 9
            html, kept_ = app.search_view(state["q"], state["mode"], state["k"],
                                          *(state[name] for name in FILTER_NAMES))
            fresh = app.filter_choices(*(state[name] for name in FILTER_NAMES))
            for name in FILTER_NAMES:  # a value the index does not have stays visible (the pane says it matches nothing)
                if state[name] not in {v for _, v in fresh[name]}:
                    fresh[name] = fresh[name] + [(state[name], state[name])]
            return (state["q"], state["mode"], state["k"],
                    *(gr.Dropdown(choices=fresh[name], value=state[name]) for name in FILTER_NAMES), html, kept_)

        demo.load(from_url, outputs=[question, mode, k, *dropdowns, results, kept], **private, **limit)

        def export_click(kept_, request: gr.Request):
            return gr.HTML(value=app.export_links(kept_, request), visible=True)

        export_btn.click(export_click, inputs=kept, outputs=files, **private, **limit)

        def vote(evt: gr.EventData, kept_):
            message = app.record_feedback(kept_, getattr(evt, "about", ""), getattr(evt, "rank", 0),
                                          getattr(evt, "vote", ""))
            return f'<span class="pq-copied">{render._e(message)}</span>'

        results.submit(vote, inputs=kept, outputs=fb_status, **private, **limit)

        def open_document(evt: gr.EventData, query: str):
            doc_id, pid = getattr(evt, "doc", None), getattr(evt, "pid", None)
            html = app.document_view(doc_id, pid, query)
            pick = doc_id if doc_id in app.documents else None
            return html, gr.Dropdown(value=pick), gr.Tabs(selected="document"), ""

        for pane in (results, compare):
            pane.click(open_document, inputs=question, outputs=[document, doc_pick, tabs, doc_files], **private,
                       **limit)

        def download(evt: gr.EventData, request: gr.Request):
            return app.document_download(getattr(evt, "doc", None), request)

        document.click(download, outputs=doc_files, **private, **limit)
        doc_pick.input(lambda d: (app.document_view(d), ""), inputs=doc_pick, outputs=[document, doc_files],
                       **private, **limit)
        by.change(lambda b: gr.Dropdown(choices=choices["doc" if b == "doc" else "region"][1:], value=[]),
                  inputs=by, outputs=picked, **private)
        run_compare.click(app.compare_view, inputs=[question, by, picked, mode], outputs=compare, **private, **limit)
        gr.api(app.api_search, api_name="search", concurrency_limit=concurrency,
               api_description="检索政策条款。返回与 `policyqa search --json` 相同的 JSON："
                               "{query, hits: [Hit.to_dict()…], warnings, reason}。")
    return demo
