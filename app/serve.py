"""Start the web app: bind address, optional password, and a queue that does not serialise requests."""
from __future__ import annotations

import logging
import os
from pathlib import Path

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


def load_handler(index_dir: Path | None = None, searcher=None):
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
    return SearchApp(searcher)


def make_app(index_dir: Path | None = None, searcher=None, concurrency: int = CONCURRENCY,
             handler=None) -> gr.Blocks:
    """The queued Blocks app over ``handler``, ``searcher``, or the index at ``index_dir``."""
    from app.ui import build_ui

    demo = build_ui(handler or load_handler(index_dir, searcher), concurrency=concurrency)
    # default_concurrency_limit covers events that do not set their own; Gradio's default of 1 would queue
    # every search behind the slowest one.
    return demo.queue(default_concurrency_limit=concurrency, max_size=MAX_QUEUE)


def launch_options(host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
                   quiet: bool = True, handler=None, concurrency: int = CONCURRENCY) -> dict:
    """Keyword arguments for ``Blocks.launch``: bind, auth, styles, no share link, no error details to users;
    with ``handler`` (a ``SearchApp``) also the JSON route ``/api/search`` (app/api.py), behind the same auth."""
    from starlette.middleware import Middleware

    from app.api import SearchAPI
    from app.render import CSS

    middleware = [Middleware(NoUploads)]
    if handler is not None:
        middleware.append(Middleware(SearchAPI, handler=handler, auth=auth, concurrency=concurrency,
                                     max_waiting=MAX_QUEUE))

    return dict(server_name=host, server_port=port, auth=auth, auth_message="请输入用户名和密码" if auth else None,
                share=False, show_error=False, css=CSS, footer_links=["api"], max_file_size="1mb",
                ssr_mode=False, pwa=False, mcp_server=False, quiet=quiet, state_session_capacity=MAX_SESSIONS,
                app_kwargs={"middleware": middleware})


def serve(index_dir: Path, host: str = "127.0.0.1", port: int = 7860, auth: tuple[str, str] | None = None,
          searcher=None, *, block: bool = True) -> gr.Blocks:
    """Serve the app on ``host:port`` (loopback by default); ``block=False`` returns the running app instead."""
    if host not in LOOPBACK and auth is None:
        log.warning("serving on %s without auth: anyone who can reach this address can search", host)
    handler = load_handler(index_dir, searcher)
    demo = make_app(handler=handler)
    # when blocking (the CLI) let Gradio print the URL; tests and embedders stay quiet
    if block:
        shown = f"[{host}]" if ":" in host else host
        print(f"JSON 接口 API: GET|POST http://{shown}:{port}/api/search  (README: Exposing it safely)", flush=True)
    demo.launch(prevent_thread_lock=not block, **launch_options(host, port, auth, quiet=not block, handler=handler))
    return demo
