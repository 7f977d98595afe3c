"""The Milvus search backend: candidates, cosines and BM25 scores from the collection; the BM25 vocabulary side.

See ``index.milvus`` for the collection's fields; every score equals the embedded backend's for the same rows.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from index.backend import Scope, top_rows
from index.milvus import MilvusSettings, MilvusTarget, call_failure, filter_expr

_IN_BATCH = 1000  # rows per `row in [...]` expression
MAX_TOPK = 16384  # Milvus's limit on one search's results: a retriever's candidates are capped there


class MilvusLexicon:
    """The BM25 vocabulary side of a Milvus index (jieba tokenizer, token ids, document frequencies), local; which
    tokens a row holds is read from its ``lex`` field.  Offers what the searcher and the relevance stage read from
    ``LexicalIndex``: ``tokenizer``, ``size``, ``term_frequency``, ``coverage``, ``idf_split``."""

    def __init__(self, tokenizer, vocab: dict[str, int], df: np.ndarray, size: int, backend: MilvusBackend | None):
        self.tokenizer, self.vocab, self.df, self.size, self.backend = tokenizer, vocab, df, size, backend

    def query_vector(self, text: str) -> dict[int, float]:
        """The sparse query: each known token's count (IP with ``lex`` = bm25s's score)."""
        counts = Counter(self.vocab[t] for t in self.tokenizer.tokenize(text) if t in self.vocab)
        return {int(k): float(v) for k, v in counts.items()}

    def _idf(self, df: int) -> float:
        return float(np.log(1.0 + (self.size - df + 0.5) / (df + 0.5)))  # Lucene BM25 IDF, as LexicalIndex

    def term_frequency(self, term: str) -> int:
        tokens = self.tokenizer.tokenize(term) if self.size else []
        if not tokens or any(t not in self.vocab for t in tokens):
            return 0
        return min(int(self.df[self.vocab[t]]) for t in tokens)

    def idf_split(self, query: str) -> tuple[dict[str, float], float, int]:
        tokens = sorted(set(self.tokenizer.tokenize(query))) if self.size else []
        known, unknown = {}, 0.0
        for t in tokens:
            df = int(self.df[self.vocab[t]]) if t in self.vocab else 0
            if df:
                known[t] = self._idf(df)
            else:
                unknown += self._idf(df)
        return known, unknown, len(tokens)

    def coverage(self, query: str, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        tokens = sorted(set(self.tokenizer.tokenize(query))) if self.size else []
        if not tokens or not len(rows):
            return np.zeros(len(rows), np.float64)
        held = self.backend.row_tokens(rows)
        got, total = np.zeros(len(rows), np.float64), 0.0
        for token in tokens:
            tid = self.vocab.get(token)
            df = int(self.df[tid]) if tid is not None else 0
            idf = self._idf(df)
            total += idf
            if df:
                got += idf * np.fromiter((tid in h for h in held), bool, len(rows))
        return got / total


class _MilvusScores:
    """One query's BM25 through the ``lex`` field: searched per query vector, exact for any rows asked."""

    def __init__(self, backend: MilvusBackend, base: dict, concepts: list[list[dict]], scope: Scope | None):
        self.b, self.base, self.concepts, self.scope = backend, base, concepts, scope
        self._known: dict[int, float] = {}  # rows scored by ``top`` (this query's object only: nothing shared)

    def _vectors(self):
        return ([self.base] if self.base else []) + [v for words in self.concepts for v in words if v]

    def top(self, n: int) -> np.ndarray:
        if n <= 0 or not self._vectors():
            return np.zeros(0, np.int64)
        if not self.concepts:  # one sparse query: its scores are the rows' exact scores
            self._known = self.b.sparse_search(self.base, n, filter_expr(self.scope))
            rows = np.asarray(sorted(self._known), np.int64)
            scores = np.zeros(self.b.size, np.float32)
            scores[rows] = [self._known[r] for r in rows.tolist()]
            return top_rows(scores, rows, n)
        found: set[int] = set()
        for vec in self._vectors():  # each vector's best rows; their union is re-scored exactly
            found.update(self.b.sparse_search(vec, n, filter_expr(self.scope)))
        rows = np.asarray(sorted(found), np.int64)
        scores = np.zeros(self.b.size, np.float32)
        scores[rows] = self.at(rows)
        return top_rows(scores, rows[scores[rows] > 0], n)

    def at(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
        if self._known and not self.concepts:  # only the rows ``top`` did not score are asked for
            out = np.asarray([self._known.get(r, 0.0) for r in rows.tolist()], np.float32)
            ask = np.asarray([r not in self._known for r in rows.tolist()], bool)
            out[ask] = self._score(self.base, rows[ask])
            return out
        total = self._score(self.base, rows)
        for words in self.concepts:
            best = None
            for vec in words:
                s = self._score(vec, rows)
                best = s if best is None else np.maximum(best, s)
            if best is not None:
                total = total + best
        return total

    def _score(self, vec: dict, rows: np.ndarray) -> np.ndarray:
        out = np.zeros(len(rows), np.float32)
        if not vec or not len(rows):
            return out
        pos = {int(r): i for i, r in enumerate(rows.tolist())}
        for start in range(0, len(rows), _IN_BATCH):
            part = rows[start:start + _IN_BATCH]
            for row, score in self.b.sparse_search(vec, len(part), filter_expr(self.scope, part)).items():
                out[pos[row]] = score
        return out


class MilvusBackend:
    """Dense candidates, cosines and BM25 scores from a Milvus collection; filters as Milvus expressions."""

    kind = "milvus"

    def __init__(self, client, target: MilvusTarget, size: int, lexicon: MilvusLexicon, ef_search: int = 128,
                 index_type: str = "FLAT", settings: MilvusSettings = MilvusSettings()):
        self.client, self.target, self.size, self.lexicon, self.ef_search = client, target, size, lexicon, ef_search
        self.index_type, self.settings = index_type, settings
        lexicon.backend = self

    def _search(self, data, field: str, limit: int, expr: str, params: dict, out=()) -> list:
        try:
            return self.client.search(self.target.collection, data=data, anns_field=field, limit=limit,
                                      filter=expr, search_params=params, output_fields=list(out))[0]
        except Exception as exc:
            raise call_failure(exc, self.target) from None

    def dense_candidates(self, qvec: np.ndarray, n: int, scope: Scope | None, candidates: int) -> np.ndarray:
        n = min(n, self.size, MAX_TOPK)
        if n <= 0:
            return np.zeros(0, np.int64)
        res = self._search([np.asarray(qvec, np.float32).tolist()], "vector", n, filter_expr(scope),
                           {"metric_type": "IP",
                            "params": self.settings.search_params(self.index_type, max(self.ef_search, n))})
        pairs = sorted(((-float(r["distance"]), int(r["id"])) for r in res))  # score desc, then row: deterministic
        return np.asarray([row for _, row in pairs], np.int64)

    def cosines(self, qvec: np.ndarray, rows: np.ndarray) -> np.ndarray:
        vectors = self._fetch(rows, "vector")
        mat = np.asarray([vectors[int(r)] for r in rows], np.float32).reshape(len(rows), -1)
        return mat @ np.asarray(qvec, np.float32).reshape(-1) if len(rows) else np.zeros(0, np.float32)

    def lexical(self, text: str, concepts: Sequence[Sequence[str]], scope: Scope | None) -> _MilvusScores:
        vecs = [[self.lexicon.query_vector(w) for w in words] for words in concepts]
        return _MilvusScores(self, self.lexicon.query_vector(text), vecs, scope)

    def sparse_search(self, vec: dict, limit: int, expr: str) -> dict[int, float]:
        """Rows and BM25 scores of the ``limit`` best matches of a sparse query within ``expr``."""
        res = self._search([vec], "lex", min(limit, MAX_TOPK), expr, {"metric_type": "IP"})
        return {int(r["id"]): float(r["distance"]) for r in res if float(r["distance"]) > 0}

    def row_tokens(self, rows: np.ndarray) -> list[set[int]]:
        """The token ids each of ``rows`` holds (its ``lex`` field's keys)."""
        lex = self._fetch(rows, "lex")
        return [set(int(k) for k, v in (lex.get(int(r)) or {}).items() if v) for r in rows]

    def _fetch(self, rows: np.ndarray, field: str) -> dict[int, object]:
        out: dict[int, object] = {}
        rows = [int(r) for r in np.asarray(rows).tolist()]
        for start in range(0, len(rows), _IN_BATCH):
            part = rows[start:start + _IN_BATCH]
            try:
                got = self.client.query(self.target.collection, filter=filter_expr(None, part),
                                        output_fields=[field])
            except Exception as exc:
                raise call_failure(exc, self.target) from None
            out.update((int(g["row"]), g[field]) for g in got)
        return out
