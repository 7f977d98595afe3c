"""Issue #15, the HTTP half: what `policyqa serve` enforces itself on a network (README: Exposing it safely).

Each test is one of the probes that did not hold before: oversized and slow requests, CORS/CSP/framing headers and
Host reflection, another client's session and exports, Gradio's cancel/reset/monitoring routes, password guessing,
and the export folder. Servers run in-process on loopback over the hand-built stub searcher.
"""
from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import time
from pathlib import Path

import httpx
import pytest

from app import guard, protocol
from app.downloads import ExportStore
from app.guard import CSP, Guard, host_name, machine_hosts
from app.serve import serve
from app.sessions import COOKIE, SessionGuard, owner_key
from app.ui import SearchApp
from ui_stub import StubSearcher, free_port, not_found

QUESTION = "医保异地结算"
MB = 1024 * 1024
AUTH = ("user", "secret")


def _start(**options) -> tuple[str, object]:
    port = free_port()
    demo = serve(None, port=port, searcher=StubSearcher(), block=False, **options)
    return f"http://127.0.0.1:{port}", demo


@pytest.fixture(scope="module")
def locked():
    """A server with a password."""
    url, demo = _start(auth=AUTH)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def open_server():
    """A server without a password (sessions and exports need no login here)."""
    url, demo = _start()
    yield url
    demo.close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _raw(port: int, data: bytes, body_chunks=(), timeout: float = 10) -> bytes:
    """Send ``data`` then ``body_chunks`` on a raw connection (stopping when the server closes); the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        try:
            for chunk in body_chunks:
                s.sendall(chunk)
        except OSError:  # the server answered and closed while the body was still coming: the point
            pass
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and b'"}' in answer:
                    break
        except OSError:
            pass
        return answer


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------- body size and slow requests
def test_huge_unauthenticated_bodies_are_refused_before_login_and_memory_stays(locked):
    port = _port(locked)
    before = _rss_mb()
    for path in ("/gradio_api/queue/join", "/login", "/gradio_api/call/search", "/api/search"):
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {100 * MB}\r\n\r\n").encode()
        answer = _raw(port, head, (b"[" * MB for _ in range(3)))
        assert answer.startswith(b"HTTP/1.1 413"), (path, answer[:200])
        assert "请求体超过".encode() in answer and b'{"error"' in answer
        # streamed (no length declared): refused as soon as the count passes the limit
        kind = "application/x-www-form-urlencoded" if path == "/login" else "application/json"
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        chunk = b"%x\r\n" % MB + b"x" * MB + b"\r\n"
        answer = _raw(port, head, (chunk for _ in range(20)))
        # /api/search checks the password before it reads a body: 401, the body never read
        assert answer.startswith(b"HTTP/1.1 401" if path == "/api/search" else b"HTTP/1.1 413"), (path, answer[:200])
    assert _rss_mb() - before < 150  # was +1.3 GB for five 100 MB posts


def test_a_request_head_that_never_ends_is_cut_off(open_server, monkeypatch):
    monkeypatch.setattr(protocol, "HEAD_TIMEOUT", 1.0)
    port = _port(open_server)
    for first in (b"", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(first)
            t0 = time.monotonic()
            assert s.recv(100) == b""  # closed by the server, not by our timeout
            assert time.monotonic() - t0 < 5
    big = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000)
                                                              for i in range(100)) + b"\r\n"
    assert _raw(port, big).startswith(b"HTTP/1.1 400")


def test_a_body_that_never_arrives_times_out(open_server, monkeypatch):
    monkeypatch.setattr(guard, "BODY_TIMEOUT", 1.0)

    async def run():
        app = Guard(not_found_reader)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as c:
            async def slow():
                yield b'{"query": '
                await asyncio.sleep(3)
                yield b'"x"}'
            return await c.post("/api/search", content=slow())

    r = asyncio.run(run())
    assert r.status_code == 408 and "超时" in r.json()["error"]


async def not_found_reader(scope, receive, send):
    """An app that reads the whole body first, like Gradio's routes."""
    while (await receive()).get("more_body"):
        pass
    await not_found(scope, receive, send)


# ---------------------------------------------------------------- headers, CORS, Host
def test_no_cors_for_other_origins_and_security_headers_everywhere(locked, open_server):
    evil = {"Origin": "http://evil.example"}
    with httpx.Client(timeout=10) as c:
        for url, path in ((open_server, "/api/search?q=医保"), (open_server, "/config"), (open_server, "/gradio_api/info"),
                          (open_server, "/"), (locked, "/api/search?q=医保"), (locked, "/config"), (locked, "/")):
            r = c.get(url + path, headers=evil)
            assert not [h for h in r.headers if h.startswith("access-control-")], (path, r.headers)
            assert r.headers["content-security-policy"] == CSP and "frame-ancestors 'none'" in CSP
            assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
        pre = c.options(open_server + "/api/search", headers={**evil, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in pre.headers


def test_cors_allow_list_lets_a_named_origin_through():
    async def gradio_like(scope, receive, send):  # what Gradio's CORS layer adds
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"access-control-allow-origin", dict(scope["headers"])[b"origin"]),
                                (b"access-control-allow-credentials", b"true")]})
        await send({"type": "http.response.body", "body": b"{}"})

    async def run(origin):
        app = Guard(gradio_like, cors_origins=["https://portal.example.gov.cn"])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as c:
            return await c.get("/config", headers={"Origin": origin})

    assert asyncio.run(run("https://portal.example.gov.cn")).headers["access-control-allow-origin"]
    assert "access-control-allow-origin" not in asyncio.run(run("https://evil.example")).headers


def test_host_is_never_copied_into_the_page(open_server):
    with httpx.Client(timeout=10) as c:
        r = c.get(open_server + "/config", headers={"Host": "evil.example"})
        assert r.status_code == 400 and "--public-url" in r.json()["error"]
        for header in ("X-Forwarded-Host", "X-Gradio-Server"):
            for path in ("/config", "/"):
                r = c.get(open_server + path, headers={header: "evil.example"})
                assert r.status_code == 200 and "evil.example" not in r.text, (header, path)
    url, demo = _start(public_url="https://policy.example.gov.cn/")
    try:
        r = httpx.get(url + "/config", headers={"Host": "policy.example.gov.cn", "X-Forwarded-Host": "evil.example"})
        assert r.status_code == 200 and r.json()["root"] == "https://policy.example.gov.cn"
    finally:
        demo.close()
    with pytest.raises(ValueError, match="public-url"):
        serve(None, searcher=StubSearcher(), block=False, public_url="policy.example.gov.cn")


def test_a_server_on_all_addresses_accepts_this_machines_names_and_addresses():
    hosts = machine_hosts("0.0.0.0")
    assert {"localhost", "127.0.0.1", "::1", socket.gethostname().lower()} <= hosts
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:  # the address other machines reach this one by
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            assert s.getsockname()[0] in hosts
        except OSError:
            pass  # no network at all
    assert machine_hosts("127.0.0.1") == {"localhost", "127.0.0.1", "::1"}
    assert "policy.example.gov.cn" in machine_hosts("127.0.0.1", "policy.example.gov.cn")
    assert [host_name(v) for v in ("[::1]:7860", "Example.org:80", "10.0.0.1", "::1")] == \
        ["::1", "example.org", "10.0.0.1", "::1"]


# ---------------------------------------------------------------- sessions, exports, closed routes
def test_another_clients_session_hash_is_refused(open_server):
    alice, mallory = httpx.Client(timeout=10), httpx.Client(timeout=10)
    with alice, mallory:
        assert COOKIE in alice.get(open_server + "/").cookies
        mallory.get(open_server + "/")
        join = {"data": [QUESTION], "fn_index": 0, "session_hash": "alice-tab-0001", "event_data": None,
                "trigger_id": None}
        assert alice.post(open_server + "/gradio_api/queue/join", json=join).status_code != 403
        for r in (mallory.post(open_server + "/gradio_api/queue/join", json={**join, "fn_index": 5}),
                  mallory.get(open_server + "/gradio_api/queue/data", params={"session_hash": "alice-tab-0001"}),
                  mallory.get(open_server + "/gradio_api/heartbeat/alice-tab-0001")):
            assert r.status_code == 403 and "另一个浏览器" in r.json()["error"], r.text


def test_exports_are_served_only_to_the_session_that_made_them(tmp_path):
    store = ExportStore(parent=tmp_path)
    app = SearchApp(StubSearcher(), exports=store)
    _, kept = app.search_view(QUESTION)
    alice = "a" * 32
    md, csv_path = (Path(p) for p in app.export_files(kept, owner=owner_key(alice, "10.0.0.1")))

    async def get(path, cookie=None, client=("10.0.0.1", 1)):
        guard_app = SessionGuard(not_found, exports=store)
        transport = httpx.ASGITransport(app=guard_app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
            return await c.get("/" + path, headers={"cookie": f"{COOKIE}={cookie}"} if cookie else {})

    link = store.url(md)
    ok = asyncio.run(get(link, alice))
    assert ok.status_code == 200 and ok.content == md.read_bytes() and "attachment" in ok.headers["content-disposition"]
    for cookie, client in (("b" * 32, ("10.0.0.1", 1)), (None, ("10.0.0.1", 1)), (None, ("10.0.0.2", 1))):
        r = asyncio.run(get(link, cookie, client))
        assert r.status_code == 404 and "已过期" in r.json()["error"]
    store.close()


def test_exports_are_written_once_private_expire_and_survive_stale_folders(tmp_path):
    store = ExportStore(ttl=60, parent=tmp_path)
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700
    (store.folder / "stale" / "deeper").mkdir(parents=True)  # made an older server's _prune fail for good
    (store.folder / "stale" / "deeper" / "x.csv").write_text("x")
    (store.folder / "stray.md").write_text("x")
    os.symlink("/etc", store.folder / "link")
    md, csv_path = store.add("ip:1", {"q.md": b"# md", "q.csv": b"a,b"})
    assert sorted(p.name for p in store.folder.iterdir()) == [md.parent.name]  # the stale ones are gone
    assert Path("/etc/passwd").exists()  # a symlink is removed, never followed
    assert stat.S_IMODE(md.parent.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in (md, csv_path)} == {0o600}
    assert store.find(md.parent.name, "q.md", "ip:1") == md
    store.prune(now=time.time() + 61)
    assert store.find(md.parent.name, "q.md", "ip:1") is None and not md.exists()
    store.close()
    assert not store.folder.exists()
    # a killed server cannot clean up: the next one removes the folder of a process that is gone, not a live one's
    dead, live = tmp_path / "policyqa-exports-999999999-x", tmp_path / f"policyqa-exports-{os.getppid()}-y"
    dead.mkdir(), live.mkdir()
    ExportStore(parent=tmp_path).close()
    assert not dead.exists() and live.exists()


def test_the_page_offers_export_links_not_gradio_files():
    import gradio as gr

    from app.ui import build_ui

    demo = build_ui(StubSearcher())
    assert not [b for b in demo.blocks.values() if isinstance(b, gr.File)]  # no second copy in Gradio's cache


def test_cancel_reset_and_monitoring_are_closed(locked, open_server, capsys):
    with httpx.Client(timeout=10) as c:
        for url in (locked, open_server):
            for method, path in (("post", "/gradio_api/cancel"), ("post", "/gradio_api/reset"), ("get", "/monitoring"),
                                 ("get", "/monitoring/summary"), ("get", "/gradio_api/monitoring")):
                r = c.request(method, url + path, json={"session_hash": "x", "fn_index": 0, "event_id": "e"})
                assert r.status_code == 404, (url, path, r.status_code)
    assert "monitoring" not in capsys.readouterr().out.lower()


# ---------------------------------------------------------------- passwords
def test_wrong_passwords_are_slowed_per_client():
    url, demo = _start(auth=AUTH)
    try:
        with httpx.Client(timeout=10) as c:
            t0 = time.monotonic()
            codes = [c.post(url + "/login", data={"username": "user", "password": f"guess{i}"}).status_code
                     for i in range(30)]
            assert codes[:5] == [400] * 5 and set(codes[5:]) == {429}, codes
            locked = c.post(url + "/login", data={"username": "user", "password": "secret"})
            assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
            assert "密码错误次数过多" in locked.json()["error"]
            # the JSON route's Basic authentication counts against the same client
            assert c.get(url + "/api/search", params={"q": QUESTION}, auth=AUTH).status_code == 429
            time.sleep(max(1.1 - (time.monotonic() - t0), 1.1))
            assert c.post(url + "/login", data={"username": "user", "password": "secret"}).status_code == 200
            assert c.get(url + "/api/search", params={"q": QUESTION}, auth=AUTH).status_code == 200
    finally:
        demo.close()


def test_json_route_refuses_what_python_accepts_but_json_does_not_mean(open_server):
    for body, says in ((b'{"query": "x", "k": 1e999}', "k must be"), (b'{"query": "x", "k": Infinity}', "k must be"),
                       (b'{"query": "x", "year": Infinity}', "year must be"), (b'{"query": "x", "k": NaN}', "k must be"),
                       (b'{"query": "x", "query": "y"}', "appears more than once"),
                       (b"[" * 100_000, "nested too deeply"), (b'{"query": ' + b"[" * 50_000, "nested too deeply")):
        r = httpx.post(open_server + "/api/search", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and says in r.json()["error"] and set(r.json()) == {"error"}, (body[:40], r.text)
    assert json.loads(httpx.get(open_server + "/api/search", params={"q": QUESTION}).text)["hits"]
