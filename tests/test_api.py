"""The JSON route ``/api/search`` (app/api.py): answers, auth, concurrency, overload, internal errors.

Bad input on this route is in tests/test_bad_input.py (every query row runs on it too, plus its own HTTP rows).
"""
from __future__ import annotations

import asyncio
import base64
import threading
import time

import httpx
import pytest

from app import serve as serve_mod
from app.api import INTERNAL_ERROR, SearchAPI
from app.ui import SearchApp
from ui_stub import SlowStub, StubSearcher, free_port, not_found


@pytest.fixture(scope="module")
def live():
    port = free_port()
    demo = serve_mod.serve(None, port=port, searcher=SlowStub(), block=False)
    yield f"http://127.0.0.1:{port}"
    demo.close()


def test_get_and_post_give_the_json_of_the_cli_and_of_gradios_api(live):
    want = SearchApp(StubSearcher()).api_search("医保异地结算", 2, region="湖南省")
    got_post = httpx.post(f"{live}/api/search", json={"query": "医保异地结算", "k": 2, "region": "湖南省"}, timeout=10)
    got_get = httpx.get(f"{live}/api/search", params={"q": "医保异地结算", "k": "2", "region": "湖南省"}, timeout=10)
    for r in (got_post, got_get):
        assert r.status_code == 200 and r.headers["content-type"] == "application/json; charset=utf-8"
        assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
        assert r.json() == want
    assert want["hits"] and all(h["region"] == "湖南省" for h in want["hits"])
    assert "医保" in got_post.text  # UTF-8 text, not \\u escapes


def test_empty_filters_mean_no_filter_and_defaults_apply(live):
    r = httpx.get(f"{live}/api/search", params={"q": "医保异地结算", "region": "", "year": "", "mode": ""}, timeout=10)
    assert r.status_code == 200
    assert r.json() == SearchApp(StubSearcher()).api_search("医保异地结算")


def test_other_paths_still_reach_gradio(live):
    assert httpx.get(f"{live}/config", timeout=10).status_code == 200
    assert httpx.get(f"{live}/api/searchx", timeout=10).status_code == 404


def test_one_slow_request_does_not_hold_up_the_others(live):
    slow: dict = {}
    t = threading.Thread(target=lambda: slow.update(r=httpx.post(f"{live}/api/search", json={"query": "慢 医保"},
                                                                    timeout=10)))
    t.start()
    time.sleep(0.3)
    t0 = time.perf_counter()
    fast = httpx.post(f"{live}/api/search", json={"query": "医保异地结算", "k": 3}, timeout=10)
    took = time.perf_counter() - t0
    assert fast.status_code == 200 and fast.json()["hits"] and took < 1.5, took
    assert t.is_alive()  # the slow one is still running
    t.join(10)
    assert slow["r"].status_code == 200 and slow["r"].json()["query"] == "慢 医保"


def test_an_internal_error_is_a_500_with_an_id_and_no_details(live, caplog):
    r = httpx.post(f"{live}/api/search", json={"query": "炸 医保"}, timeout=10)
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == INTERNAL_ERROR and len(body["request_id"]) == 12
    assert "boom" not in r.text and "/work" not in r.text and "Traceback" not in r.text
    # the server keeps working
    assert httpx.post(f"{live}/api/search", json={"query": "医保"}, timeout=10).status_code == 200


def test_auth_guards_the_json_route_with_the_pages_password():
    port = free_port()
    demo = serve_mod.serve(None, port=port, auth=("officer", "s3cret"), searcher=StubSearcher(), block=False)
    try:
        url = f"http://127.0.0.1:{port}/api/search"
        body = {"query": "医保异地结算"}
        refused = [httpx.post(url, json=body, timeout=10),
                   httpx.post(url, json=body, auth=("officer", "wrong"), timeout=10),
                   httpx.post(url, json=body, auth=("someone", "s3cret"), timeout=10),
                   httpx.post(url, json=body, headers={"authorization": "Basic !!not-base64"}, timeout=10),
                   httpx.post(url, json=body, headers={"authorization": "Bearer s3cret"}, timeout=10),
                   httpx.get(url, params={"q": "医保"}, timeout=10)]
        for r in refused:
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic"), r.status_code
            assert "hits" not in r.json()
        ok = httpx.post(url, json=body, auth=("officer", "s3cret"), timeout=10)
        assert ok.status_code == 200 and ok.json()["hits"]
        token = base64.b64encode(b"officer:s3cret").decode()
        assert httpx.get(url, params={"q": "医保"}, headers={"authorization": f"basic {token}"},
                         timeout=10).status_code == 200
    finally:
        demo.close()


class _Gate(StubSearcher):
    """Blocks every query until released: holds the route's workers busy."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def run(self, request):
        self.release.wait(10)
        return super().run(request)


def test_beyond_the_waiting_limit_requests_get_503_not_a_growing_queue():
    gate = _Gate()
    api = SearchAPI(not_found, SearchApp(gate), concurrency=2, max_waiting=1)

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            tasks = [asyncio.create_task(client.post("/api/search", json={"query": f"医保{i}"})) for i in range(6)]
            await asyncio.sleep(0.5)  # 2 running + 1 waiting; the other 3 are refused at once
            done = [t for t in tasks if t.done()]
            gate.release.set()
            responses = await asyncio.gather(*tasks)
            assert len(done) == 3 and all(t.result().status_code == 503 for t in done)
            after = await client.post("/api/search", json={"query": "医保"})  # the limit frees up again
            return [*responses, after]

    responses = asyncio.run(run())
    codes = sorted(r.status_code for r in responses[:6])
    assert codes == [200, 200, 200, 503, 503, 503], codes
    assert all(r.headers.get("retry-after") == "1" for r in responses[:6] if r.status_code == 503)
    assert responses[-1].status_code == 200
