"""Embedding models behind one small interface; the index never embeds anything except through it."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """What the index needs from an embedding model.

    ``name`` and ``dim`` and the prompts are recorded in the index manifest; loading an index rebuilds
    the embedder from the manifest, so a query is never embedded with another model than the passages.
    """

    name: str
    dim: int
    query_prompt: str
    passage_prompt: str
    max_tokens: int  # longest input (in model tokens, specials included) the model reads in one pass

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised, with the query prompt applied."""
        ...

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(n, dim) float32, L2-normalised, with the passage prompt applied."""
        ...

    def count_tokens(self, text: str) -> int:
        """Model tokens for ``text`` as a passage, prompt and specials included."""
        ...


def load_embedder(spec: str | None = None) -> Embedder:
    """Return the embedder for ``spec`` (see ``index.config.model_spec``); builds the default model if missing."""
    raise NotImplementedError("filled in by the model issue")
