"""The outermost layer of `policyqa serve`: what every request passes before any route, login or Gradio code sees it.

``Guard`` is an ASGI middleware wrapped around the *whole* app, outside Gradio's own middleware (``guard_lifespan``
puts it there when the server starts), so that:

- a body over ``max_body`` is refused with 413 before anything reads it (a declared Content-Length at once, a
  streamed body as soon as its bytes pass the limit), and a body that does not arrive within ``body_timeout``
  seconds is cut off with 408: Gradio's routes read the whole body before their login check;
- the Host header must name this server (``allowed_hosts``), and ``X-Forwarded-Host`` / ``X-Gradio-Server`` are
  dropped: Gradio builds the page's root URL from them, so a forged one was copied into ``/config`` and the page;
- routes this app does not use (Gradio's cancel/reset, monitoring, streaming, dev reload, run history…) are 404;
- every response carries a Content-Security-Policy (``frame-ancestors 'none'``), ``X-Frame-Options: DENY``,
  ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``; and CORS headers only for origins in
  ``cors_origins`` (none by default): Gradio's own CORS layer echoes any Origin with credentials.

Header size and header read time are limited one layer lower, in the HTTP protocol (app/protocol.py).
"""
from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Iterable

import anyio

#: The largest request body (the page's upload limit): a 100,000-character query is ~300 KB of UTF-8.
MAX_BODY = 1024 * 1024
#: Seconds for a request body to arrive, from its first receive to its last byte.
BODY_TIMEOUT = 30.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Gradio needs inline scripts and styles (its page config; component styles) and ``new Function`` (``js_on_load``):
#: the policy closes framing, plugins, base-URL and form hijacking, and requests to any other origin.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; media-src 'self' data: blob:; connect-src 'self'; "
       "worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"cross-origin-opener-policy", b"same-origin")]
DROPPED_REQUEST_HEADERS = (b"x-forwarded-host", b"x-gradio-server")
#: Routes of Gradio this app does not use; ``/monitoring`` prints its dashboard key to the server log.
CLOSED = re.compile(r"^/(?:gradio_api/)?(?:cancel|reset|monitoring|dev/reload|runs|run-history|vibe-edit|"
                    r"undo-vibe-edit|vibe-code|process_recording|stream|upload_progress|custom_component|mcp)(?:/|$)"
                    r"|^/gradio_api/proxy=")


def machine_hosts(host: str, public_host: str | None = None) -> set[str]:
    """Host names a request may name for a server bound to ``host``: loopback, the bound address, the public URL's
    host, and (bound to all addresses) this machine's names and their addresses."""
    names = {*LOOPBACK, host.lower()}
    if public_host:
        names.add(public_host.lower())
    if host in ("0.0.0.0", "::", ""):
        names.update(_interface_addresses())
        for name in {socket.gethostname(), socket.getfqdn()}:
            names.add(name.lower())
            try:
                names.update(info[4][0].lower() for info in socket.getaddrinfo(name, None))
            except OSError:
                pass
    return names


def _interface_addresses() -> set[str]:
    """This machine's addresses, one IPv4 per interface (Linux ioctl) and every IPv6 (/proc); empty elsewhere."""
    found: set[str] = set()
    try:
        import fcntl
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for _, name in socket.if_nameindex():
                try:  # SIOCGIFADDR: the interface's IPv4 address
                    packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))
                    found.add(socket.inet_ntoa(packed[20:24]))
                except OSError:
                    pass
    except (ImportError, OSError, AttributeError):
        pass
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as table:
            found.update(str(ipaddress.IPv6Address(bytes.fromhex(line.split()[0]))) for line in table if line.strip())
    except (OSError, ValueError):
        pass
    return found


def host_name(value: str) -> str:
    """The name part of a Host header value (``[::1]:7860`` -> ``::1``, ``Example:80`` -> ``example``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """ASGI middleware: body limit and timeout, Host check, closed routes, security and CORS headers."""

    def __init__(self, app, allowed_hosts: Iterable[str] = LOOPBACK, cors_origins: Iterable[str] = (),
                 max_body: int | None = None, body_timeout: float | None = None):
        self.app = app
        self.max_body = MAX_BODY if max_body is None else max_body
        self.body_timeout = BODY_TIMEOUT if body_timeout is None else body_timeout
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.cors_origins = {o.rstrip("/").lower() for o in cors_origins}

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope.get("headers") or () if k not in DROPPED_REQUEST_HEADERS]
        scope = {**scope, "headers": headers}
        named = dict(headers)
        send = self._headers_on(send, named.get(b"origin", b"").decode("latin-1").rstrip("/").lower())
        if scope["type"] == "websocket":  # this app serves none; a Host check is all a handshake needs here
            if host_name(named.get(b"host", b"").decode("latin-1")) not in self.allowed_hosts:
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        host = host_name(named.get(b"host", b"").decode("latin-1"))
        if host not in self.allowed_hosts:
            await error(send, 400, "请求的主机名不是本服务的地址；经代理访问时请用 --public-url 指定公开地址 / "
                                   "Host not accepted: name this server, or start it with --public-url")
            return
        path = scope["path"]
        root = scope.get("root_path") or ""
        if CLOSED.search(path[len(root):] if root and path.startswith(root) else path):
            await error(send, 404, "没有这个地址 / not found")
            return
        declared = named.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await error(send, 413 if declared.isdigit() else 400, self._too_large() if declared.isdigit()
                        else "Content-Length 不是数字 / Content-Length is not a number")
            return
        await self._limited(scope, receive, send)

    def _too_large(self) -> str:
        return f"请求体超过 {self.max_body // 1024} KB / request body over {self.max_body // 1024} KB"

    async def _limited(self, scope, receive, send):
        """Run the app with a receive that counts the body and stops waiting for it after ``body_timeout``."""
        state = {"size": 0, "done": False, "refused": False, "started": False}
        deadline = anyio.current_time() + self.body_timeout

        async def counted_receive():
            if state["refused"]:
                return {"type": "http.disconnect"}
            if state["done"]:  # the body is in: later receives wait for a disconnect (streams), unlimited
                return await receive()
            message = None
            with anyio.move_on_after(max(deadline - anyio.current_time(), 0)):
                message = await receive()
            if message is None:
                await refuse(408, "请求体发送超时 / request body timed out")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                state["size"] += len(message.get("body", b""))
                if state["size"] > self.max_body:
                    await refuse(413, self._too_large())
                    return {"type": "http.disconnect"}
                state["done"] = not message.get("more_body", False)
            return message

        async def refuse(status: int, message: str):
            state["refused"] = True
            if not state["started"]:
                state["started"] = True
                await error(send, status, message)

        async def tracked_send(message):
            if state["refused"]:
                return  # the refusal was the response; the app's own answer is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, counted_receive, tracked_send)

    def _headers_on(self, send, origin: str):
        """``send`` adding the security headers and keeping CORS headers only for an allowed ``origin``."""
        allowed = bool(origin) and origin in self.cors_origins

        async def with_headers(message):
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", ())
                        if allowed or not k.lower().startswith(b"access-control-")]
                names = {k.lower() for k, _ in kept}
                kept += [(k, v) for k, v in SECURITY_HEADERS if k not in names]
                message = {**message, "headers": kept}
            await send(message)

        return with_headers


async def error(send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """A JSON error response ``{"error": message}``."""
    body = json.dumps({"error": message}, ensure_ascii=False).encode("utf-8")
    head = [(b"content-type", b"application/json; charset=utf-8"), (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store")]
    head += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    if status in (400, 408, 413):
        head.append((b"connection", b"close"))  # the rest of the body is not read: do not reuse the connection
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def guard_lifespan(**options):
    """A lifespan for ``app_kwargs`` that, at start-up (before the server accepts a connection), wraps the app's
    whole middleware stack in ``Guard(**options)``: Gradio adds its CORS and compression layers outside the
    middleware given to it, and the body limit and CORS policy must hold in front of those too."""
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app):
        stack = app.middleware_stack or app.build_middleware_stack()
        app.middleware_stack = Guard(stack, **options)
        yield

    return lifespan
