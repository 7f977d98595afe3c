"""Start the web app: bind address, optional password, a queue that does not serialise requests, and the HTTP
hardening in front of it all (app/guard.py, app/sessions.py, app/protocol.py; README: Exposing it safely)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from urllib.parse import urlsplit

from index import config

config.offline_environment()  # before Gradio loads: no analytics, no hub (a server module sets up its process)

# Gradio's queue rebuilds a pandas summary of its last GRADIO_ANALYTICS_MAX_EVENTS (10,000) events after *every*
# event (cache frequency 1): a cost that grows with the server's age, 4 % of the server's samples after only ~400
# requests (py-spy, bench/load_test.py on a STARD-size index).  The summary feeds only Gradio's own monitoring page;
# recompute it every 1,000 events over the last 1,000 (read when the queue is made, so set before any app is built).
os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "1000")
os.environ.setdefault("GRADIO_ANALYTICS_MAX_EVENTS", "1000")

import gradio as gr

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Requests each event may run at once; searches are short and read-only, so several can share the CPU.
CONCURRENCY = 8
#: Requests waiting in the queue beyond which new ones are refused with "queue full" rather than piling up.
MAX_QUEUE = 256
#: Sessions whose state Gradio keeps in memory (oldest evicted first). Every API call is a new session holding
#: ~40-80 KB (a copy of every component's config), and Gradio's default of 10,000 let RSS climb by ~4 MB/s under
#: load (bench/load_test.py); 500 caps that at a few tens of MB and still covers every browser user of the app.
MAX_SESSIONS = 500


class NoUploads:
    """ASGI middleware closing Gradio's generic upload route (``…/upload``, open in every Gradio app): this app
    takes no files, so nobody can store content on the server and have it served back from the app's origin."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith("/upload"):
            body = "uploads are not accepted".encode()
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def load_handler(index_dir: Path | None = None, searcher=None, export_ttl: float | None = None):
    """The page's and the JSON route's handlers (``app.ui.SearchApp``) over ``searcher`` or the index at ``index_dir``
    (embedder from its manifest), warmed up (query encoder, English dictionary): not on the first users' requests."""
    from app.ui import SearchApp

    if searcher is None:
        if index_dir is None:
            raise ValueError("give index_dir or searcher")
        from index.search import Searcher

        searcher = Searcher.load(index_dir)
    warm_up = getattr(searcher, "warm_up", None) or getattr(getattr(searcher, "embedder", None), "warm_up", None)
    if callable(warm_up):
        warm_up()
    from app.downloads import ExportStore

    # the export folder is made once the index has loaded (a refused index leaves nothing behind); without a TTL
    # (tests, make_app) one is made at the first export
    return SearchApp(searcher, exports=None if export_ttl is None else ExportStore(export_ttl))


def make_app(index_dir: Path | None = None, searcher=None, concurrency: int = CONCURRENCY,
             handler=None) -> gr.Blocks:
    """The queued Blocks app over ``handler``, ``searcher``, or the index at ``index_dir``."""
    from app.ui import build_ui

    demo = build_ui(handler or load_handler(index_dir, searcher), concurrency=concurrency)
    # default_concurrency_limit covers events that do not set their own; Gradio's default of 1 would queue
    # every search behind the slowest one.
    return demo.queue(default_concurrency_limit=concurrency, max_size=MAX_QUEUE)


def launch_options(host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
                   quiet: bool = True, handler=None, concurrency: int = CONCURRENCY, public_url: str | None = None,
                   cors_origins: tuple[str, ...] = ()) -> dict:
    """Keyword arguments for ``Blocks.launch``: bind, auth, styles, no share link, no error details to users, the
    guard in front of every route (body limit, Host check, headers, CORS allow-list), session binding, export
    downloads and login throttling; with ``handler`` (a ``SearchApp``) also the JSON route ``/api/search``
    (app/api.py), behind the same auth. ``public_url`` pins the page's root URL (behind a proxy)."""
    from starlette.middleware import Middleware

    from app.api import SearchAPI
    from app.guard import guard_lifespan, machine_hosts
    from app.render import CSS
    from app.sessions import LoginThrottle, SessionGuard

    public = public_address(public_url)
    throttle = LoginThrottle()
    middleware = [Middleware(SessionGuard, exports=handler.exports if handler is not None else None, throttle=throttle,
                             secure_cookie=public is not None and public.scheme == "https"),
                  Middleware(NoUploads)]
    if handler is not None:
        middleware.append(Middleware(SearchAPI, handler=handler, auth=auth, concurrency=concurrency,
                                     max_waiting=MAX_QUEUE, throttle=throttle))
    lifespan = guard_lifespan(allowed_hosts=machine_hosts(host, public.hostname if public else None),
                              cors_origins=cors_origins)
    return dict(server_name=host, server_port=port, auth=auth, auth_message="请输入用户名和密码" if auth else None,
                share=False, show_error=False, css=CSS, footer_links=["api"], max_file_size="1mb",
                ssr_mode=False, pwa=False, mcp_server=False, quiet=quiet, state_session_capacity=MAX_SESSIONS,
                root_path=public_url.rstrip("/") if public_url else None, enable_monitoring=False,
                app_kwargs={"middleware": middleware, "lifespan": lifespan})


def public_address(public_url: str | None):
    """``public_url`` split into its parts (None when not given); ValueError unless it is an http(s) URL."""
    if not public_url:
        return None
    public = urlsplit(public_url)
    if public.scheme not in ("http", "https") or not public.hostname:
        raise ValueError(f"--public-url must be an http(s) URL such as https://policy.example.gov.cn, got {public_url!r}")
    return public


def serve(index_dir: Path, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
          searcher=None, *, block: bool = True, public_url: str | None = None, cors_origins: tuple[str, ...] = (),
          export_ttl: float | None = None) -> gr.Blocks:
    """Serve the app on ``host:port`` (loopback by default); ``block=False`` returns the running app instead."""
    from app import protocol

    if host not in LOOPBACK and auth is None:
        log.warning("serving on %s without auth: anyone who can reach this address can search", host)
    public_address(public_url)  # a bad --public-url is refused before the index is loaded
    options = dict(public_url=public_url, cors_origins=tuple(cors_origins))
    protocol.install()  # request heads limited in time and size (uvicorn's options are not reachable via Gradio)
    from app.downloads import EXPORT_TTL

    handler = load_handler(index_dir, searcher, EXPORT_TTL if export_ttl is None else export_ttl)
    demo = make_app(handler=handler)
    # when blocking (the CLI) let Gradio print the URL; tests and embedders stay quiet
    if block:
        shown = f"[{host}]" if ":" in host else host
        print(f"JSON 接口 API: GET|POST http://{shown}:{port}/api/search  (README: Exposing it safely)", flush=True)
    _close_with(demo, handler.exports.close)
    demo.launch(prevent_thread_lock=not block, **launch_options(host, port, auth, quiet=not block, handler=handler,
                                                                 **options))
    return demo


def _close_with(demo: gr.Blocks, cleanup) -> None:
    """Run ``cleanup`` (remove the export folder) when ``demo`` is closed, and at exit."""
    import atexit

    atexit.register(cleanup)
    close = demo.close

    def closing(*args, **kwargs):
        try:
            return close(*args, **kwargs)
        finally:
            cleanup()

    demo.close = closing
