"""The app, the JSON route and the CLI against a real Searcher over a small index (fake embedder): every surface gives
the same validated request and the same JSON; the core knows no screen; concurrent searches are independent."""
from __future__ import annotations

import ast
import asyncio
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.api import SearchAPI
from app.cite import hit_citation
from app.export import response_json
from app.ui import SearchApp
from fakes import HashEmbedder
from index.request import REASON_FILTERED, RequestError, SearchRequest
from index.search import Searcher
from index.store import IndexSettings, build_index
from index_fixtures import GBA_MED, GBA_TITLE, corpus
from ui_stub import not_found

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "哪些条款涉及医保异地结算"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    ix = tmp_path_factory.mktemp("real-app") / "ix"
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    return ix


@pytest.fixture(scope="module")
def searcher(index_dir) -> Searcher:
    return Searcher.load(index_dir)  # the fake is registered by name: rebuilt from the manifest like the real model


def _api(searcher, *requests: dict) -> list[httpx.Response]:
    api = SearchAPI(not_found, SearchApp(searcher))

    async def run():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://t") as client:
            # allow_nan: a client may send Infinity (and 1e999 parses to it); the route must refuse it with a 400
            return [await client.post("/api/search", content=json.dumps(r, allow_nan=True),
                                      headers={"content-type": "application/json"}) for r in requests]

    return asyncio.run(run())


def test_the_page_shows_real_hits_with_their_citations(searcher):
    app = SearchApp(searcher)
    html, (query, hits) = app.search_view(QUESTION, "hybrid", 5)
    assert query == QUESTION and hits and any(h.path and h.path[-1] == GBA_MED for h in hits)
    med = next(h for h in hits if h.path and h.path[-1] == GBA_MED)
    assert hit_citation(med).startswith(f"《{GBA_TITLE}》（湘政办发〔2020〕8号） › 二、重点任务")
    assert hit_citation(med).replace("《", "&lt;").split("›")[-1].strip()[:3] in html or GBA_MED[:3] in html
    assert app.search_view(QUESTION, "hybrid", 5, region="萍乡市")[1][1][0].doc_id == "px"


@pytest.mark.slow
def test_api_cli_and_python_give_one_json(searcher, index_dir):
    want = response_json(searcher.query(QUESTION, 3, region="湖南省"))
    assert want["hits"] and list(want) == ["query", "hits", "found", "warnings", "reason", "notes"]
    (got,) = _api(searcher, {"query": QUESTION, "k": 3, "region": "湖南省"})
    assert got.status_code == 200 and got.json() == want
    assert SearchApp(searcher).api_search(QUESTION, 3, region="湖南省") == want
    cli = subprocess.run([sys.executable, str(ROOT / "tests" / "fake_cli.py"), "search", QUESTION, "--k", "3",
                          "--region", "湖南省", "--index", str(index_dir), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == want


@pytest.mark.slow
def test_batch_json_lines_carry_reason_warnings_and_notes(index_dir, tmp_path):
    queries = tmp_path / "q.jsonl"
    rows = [{"id": "a", "query": QUESTION}, {"_id": "b", "text": "   "}, {"id": "c", "query": "医保" * 1500},
            {"id": "d", "query": "medical insurance settlement"}]
    queries.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "fake_cli.py"), "search", "--queries", str(queries),
                          "--index", str(index_dir), "--json", "--k", "2"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["id"] for x in lines] == ["a", "b", "c", "d"]
    assert all(list(x)[:7] == ["id", "query", "hits", "found", "warnings", "reason", "notes"] for x in lines)
    assert lines[0]["hits"] and lines[0]["hits"][0]["citation"].startswith("《")
    assert lines[1]["hits"] == [] and lines[1]["reason"]  # the empty question says why
    assert lines[2]["warnings"]  # truncated at 2,000 characters, and says so
    assert lines[3]["notes"]  # the English question names the Chinese words it was matched with


def test_every_surface_refuses_the_same_bad_request(searcher):
    for bad, field in ((dict(k=0), "k"), (dict(k=float("inf")), "k"), (dict(k="1e999"), "k"), (dict(mode="x"), "mode"),
                       (dict(year="二〇一九"), "year"), (dict(region=["湖南省"]), "region")):
        with pytest.raises(RequestError) as err:
            SearchRequest.parse(QUESTION, **{"k": 10, **bad})
        assert err.value.field == field and " / " in str(err.value)  # 中文 / English
        message = str(err.value)
        with pytest.raises(ValueError, match="/"):
            searcher.query(QUESTION, **{"k": 10, **bad})
        assert message in SearchApp(searcher).search_view(QUESTION, **{"k": 10, **bad})[0].replace("&#x27;", "'")
        (resp,) = _api(searcher, {"query": QUESTION, **bad})
        assert resp.status_code == 400 and resp.json() == {"error": message}


def test_an_unknown_document_filter_is_answered_the_same_everywhere(searcher):
    assert searcher.query(QUESTION, doc="../../etc/passwd").reason == REASON_FILTERED
    (resp,) = _api(searcher, {"query": QUESTION, "doc": "../../etc/passwd"})
    assert resp.status_code == 200 and resp.json()["reason"] == REASON_FILTERED


def test_concurrent_searches_with_different_k_equal_the_sequential_ones(tmp_path):
    # HNSW from 5 vectors: before FAISS's per-call SearchParametersHNSW, threads changed the shared index's efSearch
    # (and the process's OpenMP threads) under each other and some got fewer than k neighbours
    ix = tmp_path / "hnsw"
    docs = corpus()
    build_index(docs, ix, HashEmbedder(), IndexSettings.of(hnsw_threshold=5, hnsw_ef_search=4), progress=False)
    s = Searcher.load(ix, HashEmbedder())
    assert s._ix.dense.kind == "hnsw"
    jobs = [(q, k, mode) for q in ("医保结算", "高铁建设", "公交一卡通", "本法施行") for k in (1, 3, 7, 14)
            for mode in ("dense", "hybrid")]
    want = {job: [(h.chunk_id, h.score) for h in s.search(job[0], job[1], mode=job[2])] for job in jobs}
    dense_rows = {k: len(s._ix.dense.search(s.query_vector("医保结算"), k)[1]) for k in (1, 3, 7, 14)}
    assert dense_rows == {1: 1, 3: 3, 7: 7, 14: 14}
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(5):
            got = list(pool.map(lambda job: [(h.chunk_id, h.score) for h in s.search(job[0], job[1], mode=job[2])],
                                jobs * 3))
            assert got == [want[job] for job in jobs * 3]


def _imports(folder: str) -> set[str]:
    names = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module.split(".")[0])
    return names


def test_the_core_imports_no_face_and_eval_uses_the_engine_like_a_user():
    assert not _imports("index") & {"app", "eval", "tests"}
    assert not _imports("eval") & {"app", "tests"}


def test_importing_the_engine_changes_no_environment():
    code = ("import os, json; before = dict(os.environ); import index, index.search, index.store, index.embed, "
            "index.config; print(json.dumps(sorted(set(os.environ.items()) ^ set(before.items()))))")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "OMP_WAIT_POLICY", "GRADIO_ANALYTICS_ENABLED",
                        "HF_HUB_DISABLE_TELEMETRY")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


def test_concurrent_hnsw_searches_each_get_their_k_neighbours():
    # the reproduction: 8 threads, k from 1 to 500 on one shared HNSW graph (efSearch 16 as built)
    import numpy as np

    from index.dense import DenseIndex

    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((6000, 32)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    dense = DenseIndex.build(vecs, hnsw_threshold=1000, hnsw_m=8, ef_construction=40, ef_search=16)
    assert dense.kind == "hnsw"
    jobs = [(i, k) for i in range(40) for k in (1, 10, 200, 500)]
    want = {job: dense.search(vecs[job[0]], job[1])[1].tolist() for job in jobs}
    assert all(len(want[job]) == job[1] for job in jobs)
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda job: dense.search(vecs[job[0]], job[1])[1].tolist(), jobs * 5))
    assert got == [want[job] for job in jobs * 5]
