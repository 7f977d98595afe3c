"""The app's handlers, its Blocks wiring, and the live /search API (loopback, stub or fake-embedder index)."""
from __future__ import annotations

from app.cite import hit_citation

import json
import os
import time
from pathlib import Path

import gradio as gr
import pytest

from app import serve as serve_mod
from app.ui import MAX_K, SearchApp, build_ui
from ui_stub import DOCS, Response, SlowStub, StubSearcher, free_port

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
QUESTION = "哪些条款涉及医保异地结算"


# ---------------------------------------------------------------- handlers
def test_search_view_renders_cards_and_keeps_hits_for_export():
    app = SearchApp(StubSearcher())
    html, (query, hits) = app.search_view(QUESTION)
    assert query == QUESTION and len(hits) == 3
    assert html.count('<article class="pq-card"') == 3 and "要点" in html


def test_filters_reach_the_searcher_and_all_means_none():
    stub = StubSearcher()
    app = SearchApp(stub)
    app.search_view(QUESTION, "bm25", 5, "", "", "", "")
    assert stub.calls[-1][1] == dict(k=5, mode="bm25", doc=None, region=None, issuer=None, year=None)
    app.search_view(QUESTION, "hybrid", 10, "px", "萍乡市", "萍乡市人民政府办公室", "2019")
    assert stub.calls[-1][1] == dict(k=10, mode="hybrid", doc="px", region="萍乡市", issuer="萍乡市人民政府办公室",
                                     year=2019)


@pytest.mark.parametrize("kwargs, message", [
    (dict(doc=["x"]), "文件必须是文字"),
    (dict(year="二〇一九"), "年份必须是整数"),
    (dict(mode="regex"), "检索方式"),
    (dict(k=0), "结果数"),
    (dict(k="many"), "结果数"),
])
def test_bad_input_gives_a_message_and_never_reaches_the_searcher(kwargs, message):
    stub = StubSearcher()
    html, (_, hits) = SearchApp(stub).search_view(QUESTION, **kwargs)
    assert message in html and hits == () and stub.calls == []


def test_an_unknown_document_is_a_filter_that_matches_nothing():
    # the same answer on every surface (SearchRequest is validated once; the index says what exists)
    stub = StubSearcher()
    html, (_, hits) = SearchApp(stub).search_view(QUESTION, doc="../../etc/passwd")
    assert hits == () and stub.calls[-1][1]["doc"] == "../../etc/passwd" and "root:" not in html


def test_huge_k_is_capped():
    stub = StubSearcher()
    SearchApp(stub).search_view(QUESTION, k=10**9)
    assert stub.calls[-1][1]["k"] == MAX_K


def test_searcher_crash_shows_a_message_not_a_trace():
    class Broken(StubSearcher):
        def run(self, *a, **kw):
            raise RuntimeError("faiss exploded at /secret/path")

    html, _ = SearchApp(Broken()).search_view(QUESTION)
    assert "内部错误" in html and "secret" not in html and "Traceback" not in html


def test_empty_and_nothing_found_show_the_empty_state():
    app = SearchApp(StubSearcher())
    assert "pq-empty" in app.search_view("   ")[0]
    html, (_, hits) = app.search_view("量子")
    assert hits == () and "没有足够相关的条款" in html


def test_filter_choices_come_from_the_index():
    ch = SearchApp(StubSearcher()).filter_choices()
    assert ch["doc"][0] == ("全部", "") and {v for _, v in ch["doc"][1:]} == set(DOCS)
    assert [v for _, v in ch["region"]] == ["", "湖南省", "萍乡市"]
    assert [v for _, v in ch["year"]] == ["", "2021", "2020", "2019"]


def test_document_view_serves_indexed_documents_only():
    app = SearchApp(StubSearcher())
    assert "pq-target" in app.document_view("hn", "hn#p0", QUESTION)
    for bad in ("../../etc/passwd", "/etc/passwd", "corpus/000_f620c4800d4537e4.txt", "", None):
        out = app.document_view(bad, None)
        assert "pq-doc" not in out and "root:" not in out


def test_compare_by_document_and_by_region():
    app = SearchApp(StubSearcher())
    out = app.compare_view(QUESTION, "doc")
    assert out.count('<section class="pq-col">') == 3
    assert "湖南省对接粤港澳大湾区实施方案" in out and "萍乡对接粤港澳大湾区建设行动方案" in out
    out = app.compare_view(QUESTION, "region")
    assert out.count('<section class="pq-col">') == 2 and ">湖南省</h3>" in out and ">萍乡市</h3>" in out
    picked = app.compare_view(QUESTION, "doc", ["czt", "px"])
    assert picked.count('<section class="pq-col">') == 2 and "湖南省对接" not in picked.split("pq-col")[1]
    assert "pq-empty" in app.compare_view("", "doc")


def test_export_writes_markdown_and_csv_with_citations(tmp_path):
    from app.downloads import ExportStore

    app = SearchApp(StubSearcher(), exports=ExportStore(parent=tmp_path))
    _, kept = app.search_view(QUESTION)
    md, csv_path = (Path(p) for p in app.export_files(kept))
    assert md.suffix == ".md" and csv_path.suffix == ".csv"
    assert hit_citation(kept[1][0]) in md.read_text(encoding="utf-8")
    assert hit_citation(kept[1][0]) in csv_path.read_text(encoding="utf-8-sig")
    with pytest.raises(ValueError):
        app.export_files(("", ()))
    # the page says so in Chinese, not with Gradio's English "Error" toast (#16)
    assert "没有可导出的结果" in app.export_links(("", ()))


def test_api_search_returns_cli_json_and_raises_gr_error_on_bad_input():
    app = SearchApp(StubSearcher())
    data = app.api_search("医保异地结算", k=2)
    assert set(data) == {"query", "hits", "found", "warnings", "reason", "notes"} and len(data["hits"]) == 2
    assert data["hits"][0]["citation"].startswith("《")
    with pytest.raises(gr.Error):
        app.api_search("医保", k=-1)


# ---------------------------------------------------------------- wiring
def test_every_event_has_a_concurrency_limit_and_only_search_is_public():
    demo = serve_mod.make_app(searcher=StubSearcher(), concurrency=6)
    fns = list(demo.fns.values())
    public = [f.api_name for f in fns if f.api_visibility == "public"]
    assert public == ["search"]
    default = demo._queue.default_concurrency_limit
    effective = {f.name: default if f.concurrency_limit == "default" else f.concurrency_limit for f in fns}
    assert default == 6 and set(effective.values()) == {6}, effective  # Gradio's default of 1 would serialise


def test_clicking_an_example_runs_the_search():
    demo = serve_mod.make_app(searcher=StubSearcher())
    fns = demo.fns
    load = next(i for i, f in fns.items() if f.name == "load_example")
    chained = [f for f in fns.values() if f.trigger_after == load]
    assert [f.name for f in chained] == ["search_view"]  # filling the box is followed by the search itself
    assert [c.elem_id for c in chained[0].outputs][0] == "pq-results"


def test_launch_options_bind_loopback_and_hide_errors():
    opts = serve_mod.launch_options()
    assert opts["server_name"] == "127.0.0.1" and opts["share"] is False and opts["show_error"] is False
    assert opts["auth"] is None and "pq-card" in opts["css"]


# ---------------------------------------------------------------- live server
@pytest.fixture(scope="module")
def live():
    port = free_port()
    demo = serve_mod.serve(None, port=port, searcher=SlowStub(), block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_gradio_client_gets_the_search_json(live):
    from gradio_client import Client

    client = Client(live, verbose=False)
    assert "/search" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    data = client.predict("医保异地结算", 2, api_name="/search")
    assert data == SearchApp(StubSearcher()).api_search("医保异地结算", 2)


def test_one_slow_request_does_not_hold_up_the_others(live):
    from gradio_client import Client

    slow = Client(live, verbose=False).submit("慢 医保", 3, api_name="/search")
    time.sleep(0.3)
    t0 = time.perf_counter()
    fast = Client(live, verbose=False).predict("医保异地结算", 3, api_name="/search")
    took = time.perf_counter() - t0
    assert fast["hits"] and took < 1.5, took
    assert not slow.done()
    assert slow.result(timeout=10)["query"] == "慢 医保"


@pytest.mark.parametrize("path", ["/etc/passwd", "../../etc/passwd", str(Path(__file__).resolve()),
                                  "corpus/000_f620c4800d4537e4.txt", "/tmp/policyqa-exports"])
def test_file_routes_serve_no_path_from_the_request(live, path):
    import httpx

    for route in ("/gradio_api/file=", "/file="):
        r = httpx.get(live.rstrip("/") + route + path, timeout=10)
        assert r.status_code in (403, 404), (route, path, r.status_code)
        assert "root:" not in r.text and "import" not in r.text


def test_auth_protects_the_app():
    import httpx

    port = free_port()
    demo = serve_mod.serve(None, port=port, auth=("officer", "s3cret"), searcher=StubSearcher(), block=False)
    try:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/config", timeout=10).status_code in (401, 403)
        with httpx.Client(timeout=10) as c:
            assert c.post(f"{url}/login", data={"username": "officer", "password": "wrong"}).status_code in (400, 401)
            assert c.post(f"{url}/login", data={"username": "officer", "password": "s3cret"}).status_code == 200
            assert c.get(f"{url}/config").status_code == 200
    finally:
        demo.close()


# ---------------------------------------------------------------- against the real index code
@pytest.fixture(scope="module")
def fake_index(tmp_path_factory, corpus_dir):
    from fakes import HashEmbedder
    from index.ingest import load_documents
    from index.store import build_index

    index_dir = tmp_path_factory.mktemp("ui_index") / "index"
    emb = HashEmbedder()
    build_index(load_documents(sorted(corpus_dir.glob("*.txt")), progress=False).documents, index_dir, emb,
                progress=False)
    return index_dir, emb


def test_api_json_equals_cli_json_on_the_default_corpus(fake_index, monkeypatch):
    from typer.testing import CliRunner

    import index.embed
    from app.cli import app as cli
    from index.search import Searcher

    index_dir, emb = fake_index
    monkeypatch.setattr(index.embed, "load_embedder", lambda spec=None: emb)  # the CLI rebuilds it from the manifest
    res = CliRunner().invoke(cli, ["search", QUESTION, "--json", "--k", "5", "--index", str(index_dir)])
    assert res.exit_code == 0, res.output
    cli_json = json.loads(res.stdout)
    app = SearchApp(Searcher.load(index_dir, embedder=emb))
    assert app.api_search(QUESTION, 5) == cli_json
    html, (_, hits) = app.search_view(QUESTION)
    assert hits and html.count('class="pq-cite"') == len(hits)
    assert "pq-target" in app.document_view(hits[0].doc_id, hits[0].provision_id, QUESTION)


def test_build_ui_accepts_the_real_searcher(fake_index):
    from index.search import Searcher

    index_dir, emb = fake_index
    assert isinstance(build_ui(Searcher.load(index_dir, embedder=emb)), gr.Blocks)


def test_response_type_matches_the_real_one():
    from index.search import SearchResponse

    assert set(SearchResponse.__dataclass_fields__) == set(Response.__dataclass_fields__)


def test_k_filters_and_a_shared_link_each_run_the_search():
    demo = serve_mod.make_app(searcher=StubSearcher())
    fns = list(demo.fns.values())
    by_trigger = {}
    for f in fns:
        for block_id, event in f.targets:
            block = demo.blocks.get(block_id)
            by_trigger.setdefault((getattr(block, "elem_id", None), event), []).append(f.name)
    assert "search_view" in by_trigger[("pq-k", "release")]  # no second click after moving the slider (#16)
    for elem in ("pq-f-doc", "pq-f-region", "pq-f-issuer", "pq-f-year"):
        assert by_trigger[(elem, "input")] == ["filter_search"]  # and the other filters' choices narrow
    assert any(f.name == "from_url" for f in fns)  # ?q=… runs its search on load
    assert by_trigger[("pq-results", "submit")] == ["vote"]
