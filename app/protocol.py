"""uvicorn's HTTP protocol with a time and size limit on each request's head (request line + headers).

uvicorn arms its keep-alive timeout only after a response: a connection that sends nothing, or a header a byte at a
time (slowloris), is held open for ever, and httptools puts no limit on the size of the headers. Gradio starts
uvicorn itself and passes none of uvicorn's options through, so ``install()`` registers this class under uvicorn's
``auto`` protocol name before the server starts (the body's limits are in app/guard.py; idle keep-alive connections
are closed after uvicorn's default 5 s).
"""
from __future__ import annotations

import asyncio

#: Seconds from a connection's first byte (or a keep-alive request's first byte) to the end of the request head.
HEAD_TIMEOUT = 10.0
#: Bytes of request line + headers (nginx's default large_client_header_buffers is 4 x 8 KB).
MAX_HEAD = 64 * 1024

try:
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - uvicorn falls back to h11, which limits the head's size (16 KB) itself
    GuardedHttpTools = None
else:

    class GuardedHttpTools(HttpToolsProtocol):
        """httptools protocol closing a connection whose request head takes over ``HEAD_TIMEOUT`` seconds and
        answering 400 to one over ``MAX_HEAD`` bytes."""

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            """Start the clock: the first request's head must arrive within ``HEAD_TIMEOUT``."""
            self._head_timer: asyncio.TimerHandle | None = None
            self._head_bytes = 0
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            """A new request (also the next one on a keep-alive connection): restart the clock and the count."""
            super().on_message_begin()
            self._head_bytes = 0
            self._arm()

        def on_url(self, url: bytes) -> None:
            """Count the request line."""
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            """Count each header."""
            self._count(len(name) + len(value))
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            """The head is in: stop the clock (the body has its own limits in app/guard.py)."""
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            """Drop the timer with the connection."""
            self._disarm()
            super().connection_lost(exc)

        def _count(self, n: int) -> None:
            self._head_bytes += n
            if self._head_bytes > MAX_HEAD:
                # raised inside a parser callback, it reaches data_received as a parser error: a 400, then close
                raise httptools.HttpParserError("request head too large")

        def _arm(self) -> None:
            if getattr(self, "_head_timer", None) is None:
                self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)

        def _disarm(self) -> None:
            if getattr(self, "_head_timer", None) is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.close()


def install() -> None:
    """Make uvicorn's ``auto`` HTTP protocol (what Gradio's server uses) the guarded one, when httptools is there."""
    if GuardedHttpTools is not None:
        import uvicorn.config

        uvicorn.config.HTTP_PROTOCOLS["auto"] = f"{__name__}:GuardedHttpTools"
