"""Sentence-level cosines for cached candidates: each candidate's best sentence (``index.sentences``) against the
question, for ``train_relevance --sentences``.

Sentence vectors are the passage encoder's, of the sentence alone (no title or heading prefix: the whole chunk's vector
already carries those); question vectors the query encoder's, of the cleaned question in simplified characters (as the searcher's dense query).  Both are cached per model in
``CACHE/sentence-vectors.pkl`` (text -> float16 vector), so a second run encodes only what is new.

    python -m eval.relevance.sentences        # fill the cache for the policies, STARD and cross-corpus candidates
"""
from __future__ import annotations

import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from eval.relevance.candidates import CACHE, MODEL  # noqa: E402
from index.sentences import sentences_of  # noqa: E402

VECTORS = CACHE / "sentence-vectors.pkl"


def _load() -> dict:
    return pickle.loads(VECTORS.read_bytes()) if VECTORS.exists() else {"passages": {}, "queries": {}}


def _save(cache: dict) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = VECTORS.with_suffix(".tmp")
    tmp.write_bytes(pickle.dumps(cache))
    tmp.replace(VECTORS)  # whole or not at all


def _best_pair(cache: dict, sentences: list[str], q: np.ndarray) -> tuple[float, str]:
    """(the best cosine of cached ``sentences`` to the question vector ``q``, that sentence)."""
    return max((float(cache["passages"][s].astype(np.float32) @ q), s) for s in sentences)


def _encode(store: dict, texts: list[str], fn, what: str) -> None:
    new = sorted({t for t in texts if t not in store}, key=len)
    if not new:
        return
    t0 = time.time()
    print(f"  encoding {len(new)} {what}", flush=True)
    for i in range(0, len(new), 2048):
        part = new[i:i + 2048]
        vecs = np.asarray(fn(part), dtype=np.float32)
        store.update(zip(part, vecs.astype(np.float16)))
        print(f"    {min(i + 2048, len(new))}/{len(new)} ({time.time() - t0:.0f} s)", flush=True)


def add_sentence_cosines(items, embedder=None, top: int | None = None) -> None:
    """Set ``it.sig.sent`` (best sentence cosine of each candidate) and ``it.sig.best_sentences`` for every item with
    candidates.  With ``top``, only the first ``top`` candidates and the gold ones are encoded (the cross-encoder's
    training pairs and verified candidates); the others get cosine -1 and their first sentence."""
    from index.normalize import MAX_QUERY_CHARS, clean_query, to_simplified

    items = [it for it in items if it.hits and it.sig is not None]
    if embedder is None:
        from index.embed import load_embedder

        embedder = load_embedder(MODEL)
    cache = _load()
    # the dense query as the searcher encodes it (QuerySettings.dense_t2s: simplified characters)
    questions = {it.qid + it.source: to_simplified(clean_query(it.query, MAX_QUERY_CHARS).text) for it in items}

    def wanted(it, i):
        return top is None or i < top or bool(it.labels is not None and it.labels[i])

    sentences = {h.text: sentences_of(h.text) for it in items for i, h in enumerate(it.hits) if wanted(it, i)}
    before = (len(cache["passages"]), len(cache["queries"]))
    _encode(cache["queries"], list(questions.values()), embedder.encode_queries, "questions")
    _encode(cache["passages"], [s for ss in sentences.values() for s in ss],
            lambda xs: embedder.encode_passages(xs, progress=False), "sentences")
    if (len(cache["passages"]), len(cache["queries"])) != before:
        _save(cache)
    for it in items:
        q = cache["queries"][questions[it.qid + it.source]].astype(np.float32)
        best = [_best_pair(cache, sentences[h.text], q) if wanted(it, i) else (-1.0, sentences_of(h.text)[0])
                for i, h in enumerate(it.hits)]
        it.sig.sent = np.asarray([c for c, _ in best], dtype=np.float64)
        it.sig.best_sentences = tuple(s for _, s in best)


class LazySentences:
    """``index.sentences.SentenceVectors``' ``best`` for an index whose stage folder has no sentence vectors yet (a
    stage being tried with ``devpath --stage``): each candidate's sentences from this module's cache, encoded on a miss
    (the cache is written back when the process ends)."""

    def __init__(self, texts: list[str], embedder):
        import atexit

        self.texts, self.embedder, self.cache = texts, embedder, _load()
        self._dirty = False
        atexit.register(self.save)

    def best(self, qvec, rows) -> np.ndarray:
        out = []
        q = np.asarray(qvec, dtype=np.float32)
        for r in rows:
            sents = sentences_of(self.texts[int(r)])
            missing = [s for s in sents if s not in self.cache["passages"]]
            if missing:
                vecs = np.asarray(self.embedder.encode_passages(missing), dtype=np.float32)
                self.cache["passages"].update(zip(missing, vecs.astype(np.float16)))
                self._dirty = True
            out.append(_best_pair(self.cache, sents, q)[0])
        return np.asarray(out, dtype=np.float64)

    def save(self) -> None:
        if self._dirty:
            _save(self.cache)
            self._dirty = False


def _cli() -> None:
    from eval.relevance.candidates import cross_items, load_policies, load_stard

    pol, _ = load_policies()
    st, _ = load_stard()
    to_stard, to_pol = cross_items(pol, st)
    add_sentence_cosines(pol + st + to_stard + to_pol)
    print("sentence cosines ready:", VECTORS)


if __name__ == "__main__":
    _cli()
