"""The JSON search route of `policyqa serve`: ``GET|POST /api/search``, one request, one JSON answer.

Gradio's own API (``POST /gradio_api/call/search``, then an event stream) takes two requests per search and ~15 ms of
the server's CPU in queue bookkeeping besides the search itself (~20 ms, most of it the query encoder, which runs
outside the GIL). On 2 cores that capped 20 concurrent clients at ~40 searches/s, p95 650-900 ms
(bench/load_test.py). Scripts, evaluators and other services use this route instead; the page keeps Gradio's queue.

It is an ASGI middleware in front of the Gradio app, so it answers before Gradio sees the request:

- ``GET /api/search?q=…&k=10&mode=hybrid&doc=&region=&issuer=&year=`` or ``POST /api/search`` with a JSON object
  ``{"query": …, "k": …, "mode": …, "doc": …, "region": …, "issuer": …, "year": …}`` (only ``query`` is needed;
  ``q`` is accepted for ``query``). The answer is the JSON of ``policyqa search --json``.
- Bad input is a 400 with ``{"error": "…"}`` naming the field (the same messages as the page); an unknown field is
  refused rather than ignored, so a typo in a filter name cannot silently widen a search. Bodies over 1 MB: 413.
  A repeated key and deep nesting (which Python's parser follows until it overflows its stack) are a 400, not a
  500; ``NaN``/``Infinity`` (or ``1e999``, which overflows to it) reach ``SearchRequest.parse``, which refuses a
  non-finite value with the message naming its field that every surface gives.
- Searches run in worker threads, at most ``concurrency`` at once; beyond ``max_waiting`` waiting requests the
  answer is 503 with ``Retry-After`` instead of an ever-growing queue.
- With ``--auth`` the route asks for the same user and password as the page, by HTTP Basic authentication
  (``curl -u user:password``); without the right header it answers 401, and after several wrong passwords from one
  address 429 for a growing time (``throttle``, shared with the page's login). Nothing here touches the file system.
"""
from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import uuid
from typing import Any
from urllib.parse import parse_qsl

import anyio
import anyio.to_thread

from app import export
from app.guard import MAX_BODY

log = logging.getLogger(__name__)

PATH = "/api/search"
FIELDS = ("query", "k", "mode", "doc", "region", "issuer", "year")
INTERNAL_ERROR = "检索时出现内部错误，请稍后再试或联系管理员。"


class BadRequest(Exception):
    """A request this route refuses: HTTP status and a message for the caller."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class SearchAPI:
    """ASGI middleware: answers ``/api/search`` with ``handler.query`` (a ``app.ui.SearchApp``), passes the rest on."""

    def __init__(self, app, handler, auth: tuple[str, str] | None = None, concurrency: int = 8,
                 max_waiting: int = 256, throttle=None):
        self.app, self.handler, self.auth, self.throttle = app, handler, auth, throttle
        self.concurrency, self.max_waiting = concurrency, max_waiting
        self._limiter: anyio.CapacityLimiter | None = None  # made on the server's event loop, at the first search
        self._in_flight = 0  # searches admitted: running or waiting for the limiter

    async def __call__(self, scope, receive, send):
        # the path with or without the proxy's prefix (ASGI servers differ in whether scope["path"] carries it)
        if scope["type"] != "http" or scope["path"].rstrip("/") not in (PATH, scope.get("root_path", "") + PATH):
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:12]
        try:
            self._check_auth(scope, (scope.get("client") or ("", 0))[0])
            params = await self._params(scope, receive)
            body = await self._search(params)
            await _respond(send, 200, body)
        except BadRequest as exc:
            await _respond(send, exc.status, _dumps({"error": exc.message}), exc.headers)
        except Exception:  # the caller gets an id to quote, the log keeps the trace
            log.exception("search API request %s failed", request_id)
            await _respond(send, 500, _dumps({"error": INTERNAL_ERROR, "request_id": request_id}))

    # ---------------------------------------------------------------- request
    def _check_auth(self, scope, client: str) -> None:
        if self.auth is None:
            return
        refusal = self.throttle.refusal(client) if self.throttle is not None else None
        if refusal is not None:
            raise BadRequest(429, *refusal)
        header = dict(scope.get("headers") or ()).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        user = password = b""
        if scheme.lower() == b"basic":
            try:
                user, _, password = base64.b64decode(token.strip(), validate=True).partition(b":")
            except (binascii.Error, ValueError):
                pass
        want_user, want_password = (s.encode() for s in self.auth)
        # both compared, in constant time, whatever the first result: no timing hint of which one was wrong
        ok_user = hmac.compare_digest(user, want_user)
        ok_password = hmac.compare_digest(password, want_password)
        if self.throttle is not None and header:  # a request without credentials is no guess
            (self.throttle.succeeded if ok_user and ok_password else self.throttle.failed)(client)
        if not (ok_user and ok_password):
            raise BadRequest(401, "需要用户名和密码（HTTP Basic，例如 curl -u 用户名:密码） / user name and password "
                                 "required (HTTP Basic, e.g. curl -u user:password)",
                             {"www-authenticate": 'Basic realm="policyqa", charset="UTF-8"'})

    async def _params(self, scope, receive) -> dict[str, Any]:
        method = scope["method"]
        if method == "GET":
            try:
                pairs = parse_qsl(scope.get("query_string", b"").decode("utf-8"), keep_blank_values=True,
                                  errors="strict")
            except UnicodeDecodeError:
                raise BadRequest(400, "查询参数不是 UTF-8 编码") from None
            params: dict[str, Any] = {}
            for name, value in pairs:
                if name in params:
                    raise BadRequest(400, f"参数 {name!r} 出现了多次")
                params[name] = value
        elif method == "POST":
            raw = await _read_body(receive, scope)
            try:
                params = _strict_json(raw.decode("utf-8")) if raw.strip() else None
            except (UnicodeDecodeError, ValueError):
                params = None
            if not isinstance(params, dict):
                raise BadRequest(400, '请求体必须是 UTF-8 编码的 JSON 对象，例如 {"query": "医保异地结算", "k": 10}')
        else:
            raise BadRequest(405, f"{PATH} 只接受 GET 或 POST", {"allow": "GET, POST"})
        if "q" in params:
            if "query" in params:
                raise BadRequest(400, "参数 q 和 query 只能给一个")
            params["query"] = params.pop("q")
        unknown = sorted(set(params) - set(FIELDS))
        if unknown:
            raise BadRequest(400, f"未知参数 {unknown[0]!r}；可用参数：{'、'.join(FIELDS)}")
        if not isinstance(params.get("query"), str):
            raise BadRequest(400, "缺少问题：参数 query（或 q）必须是一段文字 / query (or q) is required and must be text")
        return params  # the values are checked by SearchRequest.parse, as on every surface

    # ---------------------------------------------------------------- search
    async def _search(self, params: dict[str, Any]) -> bytes:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.concurrency)
        if self._in_flight >= self.max_waiting + self.concurrency:
            raise BadRequest(503, "检索请求过多，请稍后再试", {"retry-after": "1"})
        self._in_flight += 1
        try:
            return await anyio.to_thread.run_sync(self._answer, params, limiter=self._limiter)
        finally:
            self._in_flight -= 1

    def _answer(self, params: dict[str, Any]) -> bytes:
        """Runs in a worker thread: validate and search through the page's own handler, then serialise."""
        try:
            resp = self.handler.query(**params)
        except ValueError as exc:  # RequestError: the field and the bilingual message
            raise BadRequest(400, str(exc)) from None
        return _dumps(export.response_json(resp))


async def _read_body(receive, scope) -> bytes:
    declared = dict(scope.get("headers") or ()).get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise BadRequest(413, f"请求体超过 {MAX_BODY // 1024} KB")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadRequest(400, "请求未发送完整")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest(413, f"请求体超过 {MAX_BODY // 1024} KB")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _strict_json(text: str) -> Any:
    """``json.loads`` refusing a repeated key (which one would win?) and deep nesting (a RecursionError, and so a
    500, before) with a 400."""
    def unique(pairs: list[tuple[str, Any]]) -> dict:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise BadRequest(400, f"参数 {key!r} 出现了多次 / key {key!r} appears more than once")
            seen[key] = value
        return seen

    try:
        return json.loads(text, object_pairs_hook=unique)
    except RecursionError:
        raise BadRequest(400, "JSON 嵌套过深 / JSON nested too deeply") from None


def _dumps(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


async def _respond(send, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    head = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]
    head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
