"""Side-by-side search timing for the backend benchmark: one worker process per index, queried in turn.

Each worker loads its index as a user's process would (``Searcher.load``, the model rebuilt from the manifest) and
answers one query at a time, so only one search runs at any moment (1 query thread) and both backends see the same
machine load; the order alternates per question.  A worker's RSS is its own process's (``/proc/<pid>/status``).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

WARMUP = 5  # queries each worker answers before timing starts (model, caches, the server's loaded segments)
#: asked first, untimed: an English query loads the CC-CEDICT dictionary (~1-6 s, once per process)
WARM_ENGLISH = "medical insurance settlement in other places"


def _serve(conn, index_dir: str, level: str) -> None:
    """Worker loop: ("query", text, k) -> (ms, ranked ids at ``level``); ("gold", questions) -> qrels; None: exit."""
    from index.search import Searcher

    try:
        searcher = Searcher.load(index_dir)
    except Exception as exc:  # the parent reports it (a dead worker's pipe would otherwise just wait)
        conn.send(("error", f"{index_dir}: {type(exc).__name__}: {exc}", None))
        return
    conn.send(("ready", os.getpid(), dict(searcher.manifest.build.backend or {"kind": "embedded"})))
    attr = "provision_id" if level == "provision" else "doc_id"
    while (msg := conn.recv()) is not None:
        if msg[0] == "gold":
            from eval.questions import resolve_gold

            conn.send(dict(resolve_gold(msg[1], searcher.documents).qrels))
            continue
        _, text, k = msg
        t0 = time.perf_counter()
        hits = searcher.query(text, k=k, mode="hybrid").hits
        ms = (time.perf_counter() - t0) * 1000
        ids: list[str] = []
        for h in hits:
            if getattr(h, attr) not in ids:
                ids.append(getattr(h, attr))
        conn.send((ms, ids))


def rss_mb(pid: int | None) -> dict | None:
    """Resident (VmRSS) and peak resident (VmHWM) memory of a process, MB; None when it cannot be read."""
    if not pid:
        return None
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        return {k: round(int(fields[v].split()[0]) / 1024, 1) for k, v in (("rss", "VmRSS"), ("peak", "VmHWM"))}
    except (OSError, KeyError, ValueError):
        return None


class Workers:
    """``with Workers({"embedded": dir, "milvus": dir}, level) as w``: ``w.side_by_side(texts, k)``, ``w.rss()``."""

    def __init__(self, indexes: dict[str, Path], level: str):
        self.indexes, self.level, self.procs, self.conns, self.pids = indexes, level, {}, {}, {}

    def __enter__(self) -> Workers:
        ctx = mp.get_context("spawn")  # a fresh interpreter: nothing of the parent's imports in its RSS
        for name, path in self.indexes.items():
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(child, str(path), self.level), daemon=True)
            proc.start()
            child.close()  # the worker's end lives in the worker only: its death is EOF here, not a hang
            self.procs[name], self.conns[name] = proc, parent
        for name, conn in self.conns.items():  # loaded one after the other, then both wait
            status, pid, _ = conn.recv()
            if status != "ready":
                raise RuntimeError(f"{name} searcher failed to load: {pid}")
            self.pids[name] = pid
        return self

    def gold(self, questions) -> dict:
        """The default corpus's gold anchors resolved against the first worker's documents (same on both)."""
        conn = next(iter(self.conns.values()))
        conn.send(("gold", list(questions)))
        return conn.recv()

    def side_by_side(self, texts: list[str], k: int = 10) -> dict[str, dict]:
        """Every text asked of every worker, the order alternating per text; {name: {"ms": [...], "ids": [...]}}."""
        names = list(self.conns)
        for text in [WARM_ENGLISH, *texts[:WARMUP]]:
            for name in names:
                self.conns[name].send(("query", text, k))
                self.conns[name].recv()
        out = {name: {"ms": [], "ids": []} for name in names}
        for i, text in enumerate(texts):
            for name in (names if i % 2 == 0 else names[::-1]):
                self.conns[name].send(("query", text, k))
                ms, ids = self.conns[name].recv()
                out[name]["ms"].append(ms)
                out[name]["ids"].append(ids)
        return out

    def rss(self) -> dict[str, dict | None]:
        return {name: rss_mb(pid) for name, pid in self.pids.items()}

    def __exit__(self, *exc) -> None:
        for name, conn in self.conns.items():
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in self.procs.values():
            proc.join(30)
            if proc.is_alive():
                proc.terminate()
                proc.join(10)
