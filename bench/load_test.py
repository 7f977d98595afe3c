"""Bounded load test of `policyqa serve` on loopback: N concurrent clients searching for S seconds, then it stops.

    python bench/load_test.py --index data/index                 # real model (the index's), 20 clients x 30 s
    python bench/load_test.py --index /tmp/ix --fake             # the tests' offline fake embedder
    python bench/load_test.py --index X --clients 20 --seconds 30 --mode hybrid --k 10
    python bench/load_test.py --index data/index --api gradio     # Gradio's queue instead of /api/search
    python bench/load_test.py --index data/index --api gradio --think 2   # people: ~2 s between searches

The script starts the server itself (``policyqa serve`` on 127.0.0.1 and a free port), waits until it answers,
runs the asyncio clients against one of the documented HTTP APIs (``--api rest``, the default: POST /api/search,
one request per search; ``--api gradio``: POST /gradio_api/call/search, then the event stream), each client sending
its next search as soon as the last one is answered (a closed loop; ``--think`` adds pauses between searches),
samples the server's RSS at start, middle and end, stops the server and prints requests/s, p50/p95/p99 latency and
errors (one JSON line with --json). Total run time is bounded (start-up timeout + seconds + drain timeout).
Queries rotate through eval/data/questions.jsonl (or ``--queries``, e.g. a BEIR queries file), each client starting
at a different one; each request gets a
distinct suffix (" <client>-<n>") so the server's query-vector cache never answers it (--repeat to allow that).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "eval" / "data" / "questions.jsonl"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (MB), from /proc."""
    total = 0
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` (all its threads), from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(index: Path, port: int, fake: bool) -> subprocess.Popen:
    entry = [sys.executable, str(ROOT / "tests" / "fake_cli.py")] if fake else [sys.executable, "-m", "app.cli"]
    return subprocess.Popen([*entry, "serve", "--index", str(index), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def stop_server(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:  # it already exited
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(url + "/config", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server not ready after {timeout:.0f} s")


async def search(client: httpx.AsyncClient, url: str, query: str, k: int, mode: str) -> dict:
    """One documented API call: returns the search JSON, raises on an error event."""
    r = await client.post(f"{url}/gradio_api/call/search", json={"data": [query, k, mode, None, None, None, None]})
    r.raise_for_status()
    event_id = r.json()["event_id"]
    r = await client.get(f"{url}/gradio_api/call/search/{event_id}")
    r.raise_for_status()
    for block in r.text.strip().split("\n\n"):
        head, _, data = block.partition("\ndata: ")
        if head == "event: complete":
            return json.loads(data)[0]
        if head == "event: error":
            raise RuntimeError(f"error event: {data[:200]}")
    raise RuntimeError(f"no result in stream: {r.text[:200]}")


async def search_rest(client: httpx.AsyncClient, url: str, query: str, k: int, mode: str) -> dict:
    """One call of the JSON route (app/api.py): one request, one answer; raises on an error status."""
    r = await client.post(f"{url}/api/search", json={"query": query, "k": k, "mode": mode})
    if r.status_code != 200:
        raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
    return r.json()


ROUTES = {"rest": search_rest, "gradio": search}


async def warm_up(url: str, query: str, k: int, mode: str, route=search) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        await route(http, url, query, k, mode)


async def run_clients(url: str, queries: list[str], clients: int, seconds: float, k: int, mode: str,
                      on_half, unique: bool = True, route=search, think: float = 0.0
                      ) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients * 2, max_keepalive_connections=clients * 2)

    async def client(i: int, http: httpx.AsyncClient) -> None:
        n = i * 7
        pause = random.Random(i)  # the same pauses in every run
        if think:
            await asyncio.sleep(pause.uniform(0, think))  # users do not all start at the same instant
        while time.monotonic() < stop:
            query = queries[n % len(queries)]
            if unique:  # a text never seen before: the query-vector cache cannot answer it
                query = f"{query} {i}-{n}"
            n += 1
            t0 = time.perf_counter()
            try:
                data = await route(http, url, query, k, mode)
                if data.get("query") != query:
                    raise RuntimeError("answer for another query")
                latencies.append(time.perf_counter() - t0)
            except Exception as exc:  # every failure is counted, the run goes on
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
            if think:  # a person reading the results: mean ``think`` seconds between answer and next question
                await asyncio.sleep(pause.uniform(0, 2 * think))

    async def sampler() -> None:  # RSS every tenth of the run (the middle one is reported as "middle")
        for _ in range(9):
            await asyncio.sleep(seconds / 10)
            on_half()

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(sampler(), *(client(i, http) for i in range(clients)))
    return latencies, errors, time.perf_counter() - t0


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--mode", default="hybrid", choices=("hybrid", "dense", "bm25"))
    ap.add_argument("--api", default="rest", choices=tuple(ROUTES),
                    help="rest: GET|POST /api/search, one request per search (scripts, services); gradio: the page's "
                         "queue, POST /gradio_api/call/search then its event stream (gradio_client)")
    ap.add_argument("--fake", action="store_true", help="serve with the tests' fake embedder (tests/fake_cli.py)")
    ap.add_argument("--startup-timeout", type=float, default=20)
    ap.add_argument("--repeat", action="store_true",
                    help="send the questions as they are (repeats hit the query-vector cache); by default every "
                         "request gets a distinct suffix so each one encodes its query")
    ap.add_argument("--think", type=float, default=0.0,
                    help="mean seconds a client waits between an answer and its next search (uniform 0..2x); "
                         "0, the default, is a closed loop: the server's saturation")
    ap.add_argument("--queries", type=Path, default=QUESTIONS,
                    help="JSON Lines with a \"query\" (ours) or \"text\" (BEIR) field per line")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    args = ap.parse_args(argv)
    if args.seconds + args.startup_timeout > 60:
        ap.error("keep the run bounded: --seconds + --startup-timeout must be <= 60")
    rows = [json.loads(line) for line in args.queries.read_text(encoding="utf-8").splitlines() if line.strip()]
    queries = [r.get("query", r.get("text")) for r in rows]
    if not queries or not all(isinstance(q, str) and q.strip() for q in queries):
        ap.error(f"{args.queries}: every line needs a non-empty \"query\" or \"text\"")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t_start = time.perf_counter()
    proc = start_server(args.index, port, args.fake)
    rss: dict[str, float] = {}
    timeline: list[float] = []
    try:
        wait_ready(url, proc, args.startup_timeout)
        startup = time.perf_counter() - t_start
        route = ROUTES[args.api]
        asyncio.run(warm_up(url, queries[0], args.k, args.mode, route))
        rss["start"] = rss_mb(proc.pid)
        cpu0, load0, client_cpu0 = cpu_seconds(proc.pid), os.getloadavg(), time.process_time()
        latencies, errors, wall = asyncio.run(run_clients(
            url, queries, args.clients, args.seconds, args.k, args.mode,
            lambda: timeline.append(round(rss_mb(proc.pid), 1)), unique=not args.repeat, route=route,
            think=args.think))
        rss["middle"] = timeline[len(timeline) // 2]
        rss["end"] = rss_mb(proc.pid)
        server_cpu = cpu_seconds(proc.pid) - cpu0
        client_cpu = time.process_time() - client_cpu0
    finally:
        stop_server(proc)
    result = {
        "index": str(args.index), "queries_file": str(args.queries),
        "embedder": "fake" if args.fake else "index model", "api": args.api, "mode": args.mode,
        "queries": "repeated (cache hits)" if args.repeat else "distinct (no cache hits)", "k": args.k,
        "clients": args.clients, "think_s": args.think, "seconds": round(wall, 1), "startup_s": round(startup, 1),
        "requests": len(latencies), "errors": len(errors), "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(1000 * percentile(latencies, 50), 1), "p95_ms": round(1000 * percentile(latencies, 95), 1),
        "p99_ms": round(1000 * percentile(latencies, 99), 1), "max_ms": round(1000 * max(latencies, default=0), 1),
        # the server's own CPU time per answered request: comparable across runs when the machine is shared
        "server_cpu_ms_per_request": round(1000 * server_cpu / max(len(latencies), 1), 1),
        # the clients share the 2 cores with the server: their CPU is part of what a closed loop can reach
        "client_cpu_ms_per_request": round(1000 * client_cpu / max(len(latencies), 1), 1),
        "loadavg_start": [round(x, 2) for x in load0], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "rss_mb": {k: round(v, 1) for k, v in rss.items()}, "rss_timeline_mb": timeline,
        "first_errors": sorted(set(errors))[:3],
    }
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"{result['clients']} clients x {result['seconds']} s (think {args.think} s) against {result['index']} "
              f"({result['embedder']}, {args.api} API, {args.mode}, k={args.k}, {result['queries']}); "
              f"server ready in {result['startup_s']} s")
        print(f"requests {result['requests']}  errors {result['errors']}  {result['rps']} req/s  "
              f"server CPU {result['server_cpu_ms_per_request']} ms/request  "
              f"client CPU {result['client_cpu_ms_per_request']} ms/request  load {result['loadavg_start']}")
        print(f"latency p50 {result['p50_ms']} ms  p95 {result['p95_ms']} ms  p99 {result['p99_ms']} ms  "
              f"max {result['max_ms']} ms")
        print("server RSS MB: " + "  ".join(f"{k} {v}" for k, v in result["rss_mb"].items())
              + f"  (every {args.seconds / 10:.0f} s: {timeline})")
        for e in result["first_errors"]:
            print("  error:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
