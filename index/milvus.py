"""The Milvus backend: chunk vectors, BM25 sparse vectors and filter fields in a Milvus collection (via pymilvus).

One collection per index.  Its rows are the index's chunk rows (``row``, the primary key, is the position in the
local ``chunks.jsonl``); the local index folder keeps what citations and the full-text view need (documents,
chunks, the jieba dictionary and BM25 vocabulary, the relevance stage, the manifest that names the collection).

Fields: ``vector`` (the unit chunk vector; metric IP = cosine), ``lex`` (sparse: bm25s's Lucene BM25 weight of each
of the chunk's jieba tokens, metric IP — a query's token counts against it give exactly the embedded backend's BM25
score), ``text`` + ``text_bm25`` (Milvus's own BM25 function over the same text with its jieba analyzer, for full-text
search by other clients; the searcher does not rank with it: see README), and the filter fields ``doc_id``,
``region``/``issuer`` (folded), ``year`` (-1: none).  Filters run inside Milvus as a boolean ``filter`` expression.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from index.backend import Scope, top_rows
from index.store.errors import FIX, IndexCorruptError, IndexMismatchError, IndexStoreError

SCHEME = "milvus://"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")
_IN_BATCH = 1000  # rows per `row in [...]` expression and per insert


class MilvusUnavailableError(IndexStoreError):
    """The Milvus server named by the index cannot be reached (or pymilvus is not installed)."""


@dataclass(frozen=True)
class MilvusTarget:
    """Where a Milvus index lives: ``milvus://host:port/collection`` (``uri`` is what pymilvus connects to)."""

    host: str
    port: int
    collection: str

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def spec(self) -> str:
        return f"{SCHEME}{self.host}:{self.port}/{self.collection}"

    @classmethod
    def parse(cls, spec: str) -> MilvusTarget:
        """``milvus://host:port/collection`` (a ``milvus:/`` that a Path collapsed is accepted too); ValueError."""
        text = str(spec)
        if text.startswith("milvus:/") and not text.startswith(SCHEME):
            text = SCHEME + text[len("milvus:/"):]
        parts = urlsplit(text)
        name = parts.path.strip("/")
        try:
            port = parts.port or 19530
        except ValueError:
            port = -1
        if parts.scheme != "milvus" or not parts.hostname or port <= 0 or not _NAME.match(name):
            raise ValueError(f"--index {spec!r}: a Milvus index is named milvus://host:port/collection (collection: "
                             f"letters, digits and _, not starting with a digit)")
        return cls(parts.hostname, port, name)


def is_milvus(spec) -> bool:
    """Whether an --index value names a Milvus collection rather than a folder."""
    return str(spec).startswith("milvus:/")


def connect(target: MilvusTarget, timeout: float = 10.0):
    """A ``MilvusClient`` for ``target``; MilvusUnavailableError (one line naming the URI) when it cannot connect."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise MilvusUnavailableError(
            f"{target.spec} needs pymilvus: pip install -e '.[milvus]'") from None
    # pymilvus logs every failed call at ERROR on its own handler before raising; the exception is turned into one
    # line for the user here (and in ``_failure``), so its log would print the same failure twice, with a timestamp.
    for name in ("pymilvus", "pymilvus.milvus_client"):  # pymilvus's dictConfig gives each its own level
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        return MilvusClient(uri=target.uri, timeout=timeout)
    except Exception as exc:  # pymilvus raises MilvusException (and grpc errors) with multi-line details
        raise MilvusUnavailableError(
            f"无法连接 Milvus / cannot reach Milvus at {target.spec} ({target.uri}): {_reason(exc)}; start the "
            f"server or fix --index") from None


def _reason(exc: Exception) -> str:
    """The first line of a pymilvus/grpc error's own message (MilvusException keeps it in ``.message``)."""
    text = str(getattr(exc, "message", "") or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:200]


def describe(client, target: MilvusTarget) -> dict:
    """The build record stored in the collection's description (model, dim, corpus hash, chunks, fingerprint)."""
    if not client.has_collection(target.collection):
        raise IndexCorruptError(f"Milvus collection {target.spec} does not exist; {FIX}")
    try:
        return json.loads(client.describe_collection(target.collection).get("description") or "{}")
    except ValueError:
        return {}


def check_collection(record: dict, expected: dict, target: MilvusTarget) -> None:
    """Refuse a collection whose build record is not the local manifest's (another model, corpus or build)."""
    if record.get("model") != expected["model"] or record.get("dim") != expected["dim"]:
        raise IndexMismatchError(
            f"Milvus collection {target.spec} was built with model {record.get('model')} (dim {record.get('dim')}), "
            f"but this index uses {expected['model']} (dim {expected['dim']}); {FIX} --index {target.spec}")
    if record != expected:
        raise IndexMismatchError(
            f"Milvus collection {target.spec} holds another build than this index's manifest records (corpus "
            f"{str(record.get('corpus_sha256'))[:12]}…, {record.get('chunks')} chunks); {FIX} --index {target.spec}")


def filter_expr(scope: Scope | None, rows: Sequence[int] | None = None) -> str:
    """The Milvus boolean expression of a Scope (and, optionally, a row list): '' for none."""
    parts = []
    if rows is not None:
        parts.append(f"row in [{','.join(str(int(r)) for r in rows)}]")
    if scope is not None:
        if scope.doc is not None:
            parts.append(f'doc_id == "{_quote(scope.doc)}"')
        if scope.region:
            parts.append(f'region like "%{_quote(scope.region)}%"')
        if scope.issuer:
            parts.append(f'issuer like "%{_quote(scope.issuer)}%"')
        if scope.year is not None:
            parts.append(f"year == {int(scope.year)}")
    return " and ".join(parts)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


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

    def _vectors(self):
        return ([self.base] if self.base else []) + [v for words in self.concepts for v in words if v]

    def top(self, n: int) -> np.ndarray:
        if n <= 0 or not self._vectors():
            return np.zeros(0, np.int64)
        found: set[int] = set()
        for vec in self._vectors():  # each vector's best rows; their union is re-scored exactly
            found.update(self.b.sparse_search(vec, n, filter_expr(self.scope)))
        rows = np.asarray(sorted(found), np.int64)
        scores = np.zeros(self.b.size, np.float32)
        scores[rows] = self.at(rows)
        return top_rows(scores, rows[scores[rows] > 0], n)

    def at(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.int64)
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

    def __init__(self, client, target: MilvusTarget, size: int, lexicon: MilvusLexicon, ef_search: int = 128):
        self.client, self.target, self.size, self.lexicon, self.ef_search = client, target, size, lexicon, ef_search
        lexicon.backend = self

    def _search(self, data, field: str, limit: int, expr: str, params: dict, out=()) -> list:
        try:
            return self.client.search(self.target.collection, data=data, anns_field=field, limit=limit,
                                      filter=expr, search_params=params, output_fields=list(out))[0]
        except Exception as exc:
            raise _failure(exc, self.target) from None

    def dense_candidates(self, qvec: np.ndarray, n: int, scope: Scope | None, candidates: int) -> np.ndarray:
        n = min(n, self.size)
        if n <= 0:
            return np.zeros(0, np.int64)
        res = self._search([np.asarray(qvec, np.float32).tolist()], "vector", n, filter_expr(scope),
                           {"metric_type": "IP", "params": {"ef": max(self.ef_search, n)}})
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
        res = self._search([vec], "lex", min(limit, 16384), expr, {"metric_type": "IP"})
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
                raise _failure(exc, self.target) from None
            out.update((int(g["row"]), g[field]) for g in got)
        return out


def _failure(exc: Exception, target: MilvusTarget) -> IndexStoreError:
    """One line for a failed call (the server went away, refused the request)."""
    return MilvusUnavailableError(f"Milvus at {target.spec} ({target.uri}) failed: {_reason(exc)}")
