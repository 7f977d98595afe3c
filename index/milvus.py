"""Milvus indexes: the milvus://host:port/collection target, connecting, checks, filter expressions.

The Milvus backend (index/milvus_backend.py) keeps chunk vectors, BM25 sparse vectors and filter fields in a Milvus collection (via pymilvus).

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
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from index.backend import Scope
from index.store.errors import FIX, IndexCorruptError, IndexMismatchError, IndexStoreError

SCHEME = "milvus://"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")


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


INDEX_TYPES = ("AUTO", "FLAT", "HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ")
CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")


@dataclass(frozen=True)
class MilvusSettings:
    """How a new collection is laid out and searched, from ``POLICYQA_MILVUS_*`` (docs/milvus/README.md).

    ``index``: AUTO is the embedded index's rule (FLAT below ``hnsw_threshold`` chunks, HNSW above); IVF_* cluster the
    vectors into ``nlist`` lists and search ``nprobe`` of them (IVF_SQ8: 1 byte a dimension, IVF_PQ: 8 bytes a
    vector).  ``shards``: the collection's write/search shards (a cluster spreads them over its data/query nodes);
    ``replicas``: in-memory copies loaded (more queries per second, not more data); ``consistency``: Strong (every
    acknowledged write is visible; the default) … Eventually."""

    index: str = "AUTO"
    nlist: int = 1024
    nprobe: int = 64
    shards: int = 1
    replicas: int = 1
    consistency: str = "Strong"

    @classmethod
    def from_env(cls, env=None) -> MilvusSettings:
        """The settings named in the environment, the defaults for the rest; ValueError naming the variable."""
        env = os.environ if env is None else env
        raw = {f: env.get(f"POLICYQA_MILVUS_{f.upper()}") for f in ("index", "nlist", "nprobe", "shards", "replicas",
                                                                    "consistency")}
        out = {}
        for field, value in raw.items():
            if value is None or value == "":
                continue
            name = f"POLICYQA_MILVUS_{field.upper()}"
            if field == "index":
                if value.upper() not in INDEX_TYPES:
                    raise ValueError(f"{name}={value!r}: one of {', '.join(INDEX_TYPES)}")
                out[field] = value.upper()
            elif field == "consistency":
                level = value.capitalize()
                if level not in CONSISTENCY_LEVELS:
                    raise ValueError(f"{name}={value!r}: one of {', '.join(CONSISTENCY_LEVELS)}")
                out[field] = level
            else:
                if not value.isdigit() or int(value) < 1:
                    raise ValueError(f"{name}={value!r}: a whole number >= 1")
                out[field] = int(value)
        return cls(**out)

    def index_type(self, chunks: int, hnsw_threshold: int) -> str:
        """The vector index a collection of ``chunks`` rows gets."""
        if self.index == "AUTO":
            return "HNSW" if chunks >= hnsw_threshold else "FLAT"
        return self.index

    def search_params(self, index_type: str, ef: int) -> dict:
        """The dense search's ``params`` for that index (``ef`` for HNSW, ``nprobe`` for IVF_*, none for FLAT)."""
        if index_type == "HNSW":
            return {"ef": ef}
        return {"nprobe": self.nprobe} if index_type.startswith("IVF") else {}


def collection_record(model: str, dim: int, fingerprint: str, corpus_sha256: str, chunks: int) -> dict:
    """What a collection's description records (``index.store.milvus_store`` writes it), and what a search or a
    vector reuse checks against the local manifest (``check_collection``)."""
    return {"model": model, "dim": dim, "fingerprint": fingerprint, "corpus_sha256": corpus_sha256, "chunks": chunks}


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
    # line for the user here (and in ``call_failure``), so its log would print the same failure twice, with a timestamp.
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


def describe(client, target: MilvusTarget, named: MilvusTarget) -> dict:
    """The build record stored in the collection's description (model, dim, corpus hash, chunks, fingerprint);
    ``named``: the index as the user names it (for the fix)."""
    if not client.has_collection(target.collection):
        raise IndexCorruptError(f"Milvus collection {target.spec} does not exist (dropped, or the server's data was "
                                f"reset); {FIX} --index {named.spec}")
    try:
        return json.loads(client.describe_collection(target.collection).get("description") or "{}")
    except ValueError:
        return {}


def check_collection(record: dict, expected: dict, target: MilvusTarget, named: MilvusTarget) -> None:
    """Refuse a collection whose build record is not the local manifest's (another model, corpus or build)."""
    if record.get("model") != expected["model"] or record.get("dim") != expected["dim"]:
        raise IndexMismatchError(
            f"Milvus collection {target.spec} was built with model {record.get('model')} (dim {record.get('dim')}), "
            f"but this index uses {expected['model']} (dim {expected['dim']}); {FIX} --index {named.spec}")
    if record != expected:
        raise IndexMismatchError(
            f"Milvus collection {target.spec} holds another build than this index's manifest records (corpus "
            f"{str(record.get('corpus_sha256'))[:12]}…, {record.get('chunks')} chunks); {FIX} --index {named.spec}")


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


def call_failure(exc: Exception, target: MilvusTarget) -> IndexStoreError:
    """One line for a failed call (the server went away, refused the request)."""
    return MilvusUnavailableError(f"Milvus at {target.spec} ({target.uri}) failed: {_reason(exc)}")
