"""A provision's sentences, for sentence-level evidence: a long policy item covers several topics, and the one sentence
that answers a question ("实现异地就医即时结算并报销医保费用" at the end of an item on 医疗卫生合作) is diluted in the
whole item's vector.  The best sentence's cosine to the question (MaxP, as in passage-level re-ranking of long
documents) sees it.

Split after a sentence mark (。！？；, a line break); a fragment shorter than ``MIN_CHARS`` (a heading such as
"18．强化医疗卫生合作。") is joined to the sentence after it, so no vector is spent on a bare heading.
"""
from __future__ import annotations

import re

import numpy as np

MIN_CHARS = 16
#: At most this many sentences per chunk (a chunk fits the model's window, so this only bounds pathological lists).
MAX_SENTENCES = 24
_END = re.compile(r"(?<=[。！？；!?;])|\n+")


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` in order (at least one when ``text`` has any non-space character)."""
    out: list[str] = []
    carry = ""
    for part in _END.split(text):
        part = part.strip()
        if not part:
            continue
        carry += part
        if len(carry) >= MIN_CHARS:
            out.append(carry)
            carry = ""
    if carry:
        if out:
            out[-1] += carry
        else:
            out.append(carry)
    if len(out) > MAX_SENTENCES:  # keep the count bounded: merge the tail into the last kept sentence
        out = out[:MAX_SENTENCES - 1] + ["".join(out[MAX_SENTENCES - 1:])]
    return out


def sentences_of(text: str) -> list[str]:
    """The sentences a chunk is judged by: ``split_sentences``, or the text itself when it has none."""
    return split_sentences(text) or [text]


class SentenceVectors:
    """The sentence vectors of an index's chunks: ``vectors`` (sentences × dim, float16, L2-normalised) and ``starts``
    (chunks + 1): chunk row r's sentences are ``vectors[starts[r]:starts[r + 1]]``, at least one per chunk."""

    def __init__(self, vectors: np.ndarray, starts: np.ndarray):
        starts = np.asarray(starts, dtype=np.int64)
        if starts.ndim != 1 or len(starts) < 1 or starts[0] != 0 or starts[-1] != len(vectors) or np.any(
                np.diff(starts) < 1):
            raise ValueError("sentence vectors: offsets do not match the vectors (every chunk needs a sentence)")
        self.vectors, self.starts = vectors, starts

    @property
    def chunks(self) -> int:
        return len(self.starts) - 1

    def best(self, qvec: np.ndarray, rows) -> np.ndarray:
        """Each chunk row's best sentence cosine to ``qvec``."""
        q = np.asarray(qvec, dtype=np.float32)
        out = np.empty(len(rows), dtype=np.float64)
        for i, r in enumerate(np.asarray(rows, dtype=np.int64)):
            out[i] = float((np.asarray(self.vectors[self.starts[r]:self.starts[r + 1]], np.float32) @ q).max())
        return out

    @classmethod
    def encode(cls, texts: list[str], encode_passages) -> SentenceVectors:
        """The sentence vectors of chunk ``texts`` (``encode_passages``: list of texts -> (n, dim) vectors)."""
        parts = [sentences_of(t) for t in texts]
        flat = [s for p in parts for s in p]
        starts = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        vecs = np.asarray(encode_passages(flat), dtype=np.float32) if flat else np.zeros((0, 0), np.float32)
        if len(vecs):
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return cls(vecs.astype(np.float16), starts)
