"""Who may use a Gradio session, download an export, or try a password: the per-client checks of `policyqa serve`.

Gradio keys each browser tab's state and event stream by a ``session_hash`` that the client chooses and sends in
the clear; whoever knew another user's could join the queue as that session (and call the export handler on its
last results) or read its event stream. ``SessionGuard`` binds each session hash, at its first use, to its owner:
the browser's ``pq-session`` cookie (random, HttpOnly, SameSite=Lax, set with the page), or for a client
without the cookie (scripts) its IP address; another owner using it gets 403. Export downloads
(``…/pq-export/<token>/<name>``, app/downloads.py) are served only to the owner that made them.

``LoginThrottle`` counts wrong passwords per client IP (Gradio's ``/login`` and ``/api/search``'s Basic
authentication): after ``FREE_TRIES`` in a row, that client is refused with 429 for 1 s, then 2 s, 4 s… up to
15 minutes, without the password being checked; a right password resets the count.
"""
from __future__ import annotations

import json
import re
import secrets
import time
from collections import OrderedDict
from urllib.parse import parse_qs, quote, unquote

from app.downloads import MEDIA_TYPES, ROUTE, ExportStore
from app.guard import error

COOKIE = "pq-session"
#: Session hashes remembered (oldest forgotten first); Gradio keeps state for far fewer (app/serve.py MAX_SESSIONS).
MAX_BOUND = 20_000
FREE_TRIES = 5
MAX_LOCK = 900.0
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
#: Routes whose request names a session: query string, path, or JSON body (``session_hash``).
_QUERY_ROUTES = re.compile(r"/gradio_api/queue/data/?$")
_PATH_ROUTES = re.compile(r"/gradio_api/heartbeat/([^/]+)/?$")
_BODY_ROUTES = re.compile(r"/gradio_api/(?:queue/join|call/[^/]+|run/[^/]+|api/[^/]+)/?$")
_DOWNLOAD = re.compile(rf"/{ROUTE}/([0-9a-f]{{32}})/([^/]+)$")


def owner_key(cookie: str | None, client_host: str | None) -> str:
    """Who a request comes from: its ``pq-session`` cookie, else its client address."""
    if cookie and _TOKEN.match(cookie):
        return "cookie:" + cookie
    return "ip:" + (client_host or "")


def request_owner(request) -> str:
    """``owner_key`` of a Gradio ``gr.Request`` (inside an event handler)."""
    raw = getattr(request, "request", None) or request
    cookies = getattr(raw, "cookies", None) or {}
    client = getattr(raw, "client", None)
    return owner_key(cookies.get(COOKIE), getattr(client, "host", None))


def _cookies(headers: dict[bytes, bytes]) -> dict[str, str]:
    jar = {}
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, _, value = part.strip().partition("=")
        jar.setdefault(name, value)
    return jar


class LoginThrottle:
    """Wrong passwords per client IP: ``wait(ip)`` says how many seconds it is still locked out (0: may try)."""

    def __init__(self, free_tries: int = FREE_TRIES, max_lock: float = MAX_LOCK):
        self.free_tries, self.max_lock = free_tries, max_lock
        self._failures: dict[str, tuple[int, float]] = {}  # ip -> (wrong tries in a row, locked until)

    def wait(self, ip: str) -> float:
        """Seconds ``ip`` must still wait before its next try."""
        return max(self._failures.get(ip, (0, 0.0))[1] - time.monotonic(), 0.0)

    def failed(self, ip: str) -> None:
        """Record a wrong password from ``ip``."""
        count = self._failures.get(ip, (0, 0.0))[0] + 1
        locked = 0.0 if count < self.free_tries else min(2.0 ** (count - self.free_tries), self.max_lock)
        self._failures[ip] = (count, time.monotonic() + locked)
        if len(self._failures) > 10_000:  # forget clients no longer locked out
            now = time.monotonic()
            self._failures = {k: v for k, v in self._failures.items() if v[1] > now}

    def succeeded(self, ip: str) -> None:
        """A right password: forget ``ip``'s wrong ones."""
        self._failures.pop(ip, None)

    def refusal(self, ip: str) -> tuple[str, dict[str, str]] | None:
        """The 429 message and headers for ``ip`` while it is locked out, else None."""
        wait = self.wait(ip)
        if not wait:
            return None
        seconds = max(int(wait + 0.999), 1)
        return (f"密码错误次数过多，请 {seconds} 秒后再试 / too many wrong passwords, try again in {seconds} s",
                {"retry-after": str(seconds)})


class SessionGuard:
    """ASGI middleware: binds Gradio session hashes to their owner, serves exports to theirs, throttles logins."""

    def __init__(self, app, exports: ExportStore | None = None, throttle: LoginThrottle | None = None,
                 secure_cookie: bool = False):
        self.app, self.exports, self.throttle = app, exports, throttle
        self.secure_cookie = secure_cookie
        self._owners: OrderedDict[str, str] = OrderedDict()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        cookie = _cookies(headers).get(COOKIE)
        client = (scope.get("client") or ("", 0))[0]
        owner = owner_key(cookie, client)
        path, method = scope["path"], scope["method"]
        if method == "POST" and path.rstrip("/").endswith("/login") and self.throttle is not None:
            await self._login(scope, receive, send, client)
            return
        if method == "GET" and (m := _DOWNLOAD.search(path)):
            await self._download(send, m.group(1), unquote(m.group(2)), owner)
            return
        session = None
        if method == "GET" and _QUERY_ROUTES.search(path):
            session = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash") or [None])[0]
        elif method == "GET" and (m := _PATH_ROUTES.search(path)):
            session = m.group(1)
        elif method == "POST" and _BODY_ROUTES.search(path):
            body, receive = await _buffer(receive)
            try:
                data = json.loads(body) if body else None
                session = data.get("session_hash") if isinstance(data, dict) else None
            except (ValueError, RecursionError):
                session = None  # Gradio answers the malformed body itself
        if isinstance(session, str) and session and not self._claim(session, owner):
            await error(send, 403, "该会话属于另一个浏览器，请刷新页面 / this session belongs to another client; "
                                   "reload the page")
            return
        if method == "GET" and not cookie:
            send = self._with_cookie(send)
        await self.app(scope, receive, send)

    def _claim(self, session: str, owner: str) -> bool:
        """Bind ``session`` to ``owner`` if unbound; whether ``owner`` may use it."""
        bound = self._owners.get(session)
        if bound is None:
            self._owners[session] = owner
            if len(self._owners) > MAX_BOUND:
                self._owners.popitem(last=False)
            return True
        self._owners.move_to_end(session)
        return bound == owner

    def _with_cookie(self, send):
        """``send`` giving a page (an HTML response) a new owner cookie. Lax, not Strict: a link followed from
        another site must still send it, or the new cookie would replace the one the user's open tabs are bound to."""
        value = f"{COOKIE}={secrets.token_urlsafe(24)}; Path=/; HttpOnly; SameSite=Lax"
        value += "; Secure" if self.secure_cookie else ""

        async def cookie_send(message):
            if message["type"] == "http.response.start":
                heads = list(message.get("headers", ()))
                if any(k.lower() == b"content-type" and v.startswith(b"text/html") for k, v in heads):
                    message = {**message, "headers": heads + [(b"set-cookie", value.encode())]}
            await send(message)

        return cookie_send

    async def _download(self, send, token: str, name: str, owner: str) -> None:
        path = self.exports.find(token, name, owner) if self.exports is not None else None
        if path is None:
            await error(send, 404, "导出文件不存在或已过期，请重新导出 / export not found or expired; export again")
            return
        data = path.read_bytes()
        head = [(b"content-type", MEDIA_TYPES.get(path.suffix, "application/octet-stream").encode()), (b"content-length", str(len(data)).encode()),
                (b"content-disposition", f"attachment; filename*=UTF-8''{quote(path.name)}".encode()),
                (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 200, "headers": head})
        await send({"type": "http.response.body", "body": data})

    async def _login(self, scope, receive, send, client: str) -> None:
        refusal = self.throttle.refusal(client)
        if refusal is not None:
            await error(send, 429, *refusal)
            return
        status = {}

        async def watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status.get("code") == 200:
            self.throttle.succeeded(client)
        elif status.get("code") in (400, 401):
            self.throttle.failed(client)


async def _buffer(receive):
    """Read the whole request body (Guard has limited its size); return it and a receive that replays it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: the app hears it too
            return b"", _once(message, receive)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    return body, _once({"type": "http.request", "body": body, "more_body": False}, receive)


def _once(first: dict, receive):
    """A receive that gives ``first``, then whatever ``receive`` gives."""
    pending = [first]

    async def replay():
        return pending.pop() if pending else await receive()

    return replay
