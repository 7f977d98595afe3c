"""A fake embedder (hashed character n-grams): tests and offline BM25-only evaluations run without the model.

Registered in ``index.embed`` under its name, so an index built with it reopens with it (``Searcher.load``)."""
from __future__ import annotations

import hashlib

import numpy as np


class HashEmbedder:
    """Deterministic bag of character 1-3-grams hashed into ``dim`` buckets, L2-normalised.

    Texts that share characters get similar vectors, which is enough to test ranking plumbing.
    """

    name = "fake-hash-ngrams"
    query_prompt = "query: "
    passage_prompt = "passage: "

    def __init__(self, dim: int = 64, max_tokens: int = 512):
        self.dim = dim
        self.max_tokens = max_tokens

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        for n in (1, 2, 3):
            for i in range(len(text) - n + 1):
                h = int.from_bytes(hashlib.blake2b(text[i : i + n].encode(), digest_size=4).digest(), "little")
                v[h % self.dim] += 1.0
        norm = np.linalg.norm(v)
        return v / norm if norm else v

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) unit vectors of hashed character 1-3-grams."""
        return np.stack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Same as queries: the fake has no prompts."""
        return self.encode_queries(texts)

    def count_tokens(self, text: str) -> int:
        """About one token per character."""
        # about one token per CJK character plus the prompt and two specials
        return len(text) + 4
