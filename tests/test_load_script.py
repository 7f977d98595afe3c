"""bench/load_test.py itself: a short run on each API against the shipped server (fake embedder) ends by itself,
with every request answered. The figures it measures belong in the note, not in a test (shared, noisy machines)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fakes import HashEmbedder
from index.store import build_index
from index_fixtures import corpus

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def fake_index(tmp_path_factory) -> Path:
    ix = tmp_path_factory.mktemp("load") / "ix"
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    return ix


@pytest.mark.slow
@pytest.mark.parametrize("api, think", [("rest", "0"), ("gradio", "0.05")])  # closed loop; with pauses
def test_a_short_load_run_answers_every_request(fake_index, api, think):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "load_test.py"), "--index", str(fake_index), "--fake",
                          "--api", api, "--clients", "4", "--seconds", "2", "--think", think, "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["api"] == api and result["think_s"] == float(think) and result["errors"] == 0 and result["requests"] >= 4, result
    assert result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert set(result["rss_mb"]) == {"start", "middle", "end"} and result["rss_mb"]["end"] > 0
