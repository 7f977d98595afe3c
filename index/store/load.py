"""Read and verify an index folder into a ``LoadedIndex``; change its query section (``attach_adapter``)."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.backend import EmbeddedBackend, SearchBackend
from index.dense import DenseIndex
from index.lexical import LexicalIndex
from index.store.atomic import folder_lock
from index.store.errors import (
    FIX, IndexAlteredError, IndexCorruptError, IndexMismatchError, IndexStoreError)
from index.store.layout import ADAPTER, BM25_DIR, CHUNKS, DENSE, DOCUMENTS, VECTORS
from index.store.manifest import (
    IndexManifest, altered_file, file_digests, files_intact, read_manifest, write_manifest)
from index.store.settings import QUERY_FIELDS, QuerySettings
from index.types import Chunk, Document, Provision, Source

if TYPE_CHECKING:
    from index.adapter import QueryAdapter
    from index.relevance import RelevanceStage
    from index.embed import Embedder


@dataclass(frozen=True)
class LoadedIndex:
    """Everything a Searcher needs, read and verified from an index directory."""

    manifest: IndexManifest
    settings: QuerySettings
    documents: dict[str, Document]
    chunks: list[Chunk]
    vectors: np.ndarray | None  # None for a Milvus index (the vectors live in the collection)
    dense: DenseIndex | None
    lexical: LexicalIndex  # (a Milvus index: its MilvusLexicon, which offers what the searcher reads)
    adapter: QueryAdapter | None = None  # the query adapter named in the manifest's query section
    relevance: RelevanceStage | None = None  # the relevance stage named there
    backend: SearchBackend | None = None  # where candidates and scores come from (index/backend.py)

    def __post_init__(self):
        if self.backend is None and self.dense is not None:  # the embedded backend over this folder's files
            object.__setattr__(self, "backend", EmbeddedBackend(self.vectors, self.dense, self.lexical))


def document_from_dict(d: dict) -> Document:
    """Inverse of ``Document.to_dict``."""
    provs = tuple(Provision(**{**p, "path": tuple(p["path"])}) for p in d["provisions"])
    return Document(**{**d, "provisions": provs, "sources": tuple(Source(**s) for s in d["sources"])})


def read_documents(index_dir: Path, verify: bool = True) -> dict[str, Document]:
    """The documents stored in the index, by id (full text and provisions, for display).

    ``verify``: first check documents.jsonl against the sha256 the manifest records (when it records one), so
    ``policyqa docs``/``show`` never show text altered after the build (~0.1 s for STARD's 70 MB)."""
    path = Path(index_dir) / DOCUMENTS
    if verify:
        try:
            manifest = read_manifest(index_dir)
        except IndexStoreError:
            manifest = None  # no or an unreadable manifest: the caller reports it (or reads what is there)
        if manifest is not None and DOCUMENTS in manifest.file_sha256 and altered_file(
                index_dir, {DOCUMENTS: manifest.files[DOCUMENTS]}, manifest.file_sha256):
            raise _altered(Path(index_dir), DOCUMENTS)
    try:
        with open(path, encoding="utf-8") as fh:
            docs = [document_from_dict(json.loads(line)) for line in fh]
    except FileNotFoundError:
        raise IndexCorruptError(f"{path} is missing; {FIX}") from None
    except (OSError, ValueError, TypeError, KeyError, RecursionError) as exc:
        raise IndexCorruptError(f"{path} is unreadable ({type(exc).__name__}: {exc}); {FIX}") from None
    return {d.id: d for d in docs}


def check_embedder(manifest: IndexManifest, embedder: Embedder, index_dir: Path) -> None:
    """Refuse an embedder other than the one the index was built with (vectors would not be comparable)."""
    model = manifest.build.model
    if embedder.name != model.name or embedder.dim != model.dim:
        raise IndexMismatchError(
            f"index at {index_dir} was built with model {model.name} (dim {model.dim}), but the model in use is "
            f"{embedder.name} (dim {embedder.dim}); {FIX} (or set POLICYQA_MODEL={model.name})")


def _altered(index_dir: Path, name: str) -> IndexCorruptError:
    if not (index_dir / name).is_file():
        return IndexCorruptError(f"{index_dir / name} is missing; {FIX}")
    return IndexAlteredError(f"{index_dir / name} does not match its recorded sha256: it was altered or damaged "
                             f"after the index was built, and is not served; {FIX}")


def load_index(index_dir: Path, embedder: Embedder | None = None) -> LoadedIndex:
    """Read and verify every file of the index; errors name the file and the fix, never a bare stack trace.

    Every file's sha256 is checked against the manifest, so an edit that keeps a file's size (a changed character
    in documents.jsonl, flipped bytes in vectors.npy) is refused instead of served.  The digests are computed on a
    second thread while the files are parsed (hashlib releases the GIL): STARD's 345 MB index takes 0.4 s to hash
    and loads in 5.1 s instead of 4.3 s on 2 busy shared cores (bench/bench_verify.py); the default corpus's
    2 MB index, no measurable change."""
    from concurrent.futures import ThreadPoolExecutor

    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    if embedder is not None:
        check_embedder(manifest, embedder, index_dir)
    if not files_intact(index_dir, manifest):
        bad = next((n for n, size in manifest.files.items()
                    if not (index_dir / n).is_file() or (index_dir / n).stat().st_size != size), "manifest.json")
        raise IndexCorruptError(f"{index_dir / bad} is missing or truncated; {FIX}")
    with ThreadPoolExecutor(1, thread_name_prefix="index-sha256") as pool:
        check = pool.submit(altered_file, index_dir, manifest.files, manifest.file_sha256)
        try:
            loaded = _read_files(index_dir, manifest)
        except IndexStoreError:
            bad = check.result()  # a file that does not parse: say it was altered when that is why
            if bad:
                raise _altered(index_dir, bad) from None
            raise
        bad = check.result()
    if bad:
        raise _altered(index_dir, bad)
    return loaded


def _read_files(index_dir: Path, manifest: IndexManifest) -> LoadedIndex:
    documents = read_documents(index_dir, verify=False)  # load_index checks every file's digest on another thread
    n = int(manifest.build.counts.get("chunks", -1))
    adapter = relevance = None
    try:
        with open(index_dir / CHUNKS, encoding="utf-8") as fh:
            chunks = [Chunk(**{k: v for k, v in json.loads(line).items() if k != "key"}) for line in fh]
        if manifest.build.backend is None:
            vectors = np.load(index_dir / VECTORS, mmap_mode="r", allow_pickle=False)
            dense = DenseIndex.load(index_dir / DENSE)
            lexical = LexicalIndex.load(index_dir / BM25_DIR, n)
        else:
            vectors = dense = None
        if manifest.query.adapter:
            from index.adapter import QueryAdapter

            adapter = QueryAdapter.read(index_dir / manifest.query.adapter)
        if manifest.query.relevance:
            from index.relevance import RelevanceStage

            relevance = RelevanceStage.load(index_dir / manifest.query.relevance)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise IndexCorruptError(f"index at {index_dir} is damaged ({type(exc).__name__}: {exc}); {FIX}") from None
    if manifest.build.backend is not None:  # connects, and checks the collection's build record (one line)
        if manifest.build.backend.get("kind") != "milvus":
            raise IndexCorruptError(f"index at {index_dir} names an unknown backend "
                                    f"{manifest.build.backend.get('kind')!r}; {FIX}")
        from index.store.milvus_store import open_milvus

        if len(chunks) != n:
            raise IndexCorruptError(f"index at {index_dir} is inconsistent ({len(chunks)} chunks, manifest says {n})"
                                    f"; {FIX}")
        backend, lexicon = open_milvus(index_dir, manifest)
        return LoadedIndex(manifest, manifest.query.settings, documents, chunks, None, None, lexicon, adapter,
                           relevance, backend)
    if not (len(chunks) == n == len(vectors) == dense.size) or vectors.shape[1] != manifest.build.model.dim:
        raise IndexCorruptError(f"index at {index_dir} is inconsistent ({len(chunks)} chunks, {len(vectors)} vectors, "
                                f"{dense.size} in FAISS, manifest says {n}); {FIX}")
    return LoadedIndex(manifest, manifest.query.settings, documents, chunks, vectors, dense, lexical, adapter,
                       relevance)


def with_settings(loaded: LoadedIndex, **changes) -> LoadedIndex:
    """A copy of ``loaded`` with query-time settings changed (build-time ones need a rebuild)."""
    bad = set(changes) - QUERY_FIELDS
    if bad:
        raise ValueError(f"{sorted(bad)} are build-time settings (or unknown); rebuild the index to change them")
    return replace(loaded, settings=replace(loaded.settings, **changes))


def attach_adapter(index_dir: Path, adapter_file: Path | None) -> IndexManifest:
    """Copy a query adapter into the index and name it in the manifest's query section (None: remove it).

    This is the explicit, per-index tuning step (`policyqa tune`): nothing is looked up by corpus hash."""
    from index.adapter import QueryAdapter

    index_dir = Path(index_dir)
    with folder_lock(index_dir):
        manifest = read_manifest(index_dir)
        files = {k: v for k, v in manifest.files.items() if k != ADAPTER}
        bad = altered_file(index_dir, files, manifest.file_sha256)
        if bad:  # the new manifest records every file's digest again: it must never vouch for an altered file
            raise _altered(index_dir, bad)
        if adapter_file is None:
            (index_dir / ADAPTER).unlink(missing_ok=True)
            new = manifest.with_query(adapter=None, adapter_fusion=None)
        else:
            adapter = QueryAdapter.read(Path(adapter_file))
            model = manifest.build.model
            if adapter.model != model.name or adapter.weight.shape[0] != model.dim:
                raise IndexMismatchError(f"{adapter_file} was trained for {adapter.model} "
                                         f"(dim {adapter.weight.shape[0]}); this index uses {model.name} "
                                         f"(dim {model.dim})")
            tmp = index_dir / (ADAPTER + ".tmp")
            shutil.copyfile(adapter_file, tmp)
            tmp.replace(index_dir / ADAPTER)
            files[ADAPTER] = (index_dir / ADAPTER).stat().st_size
            fusion = adapter.meta.get("fusion")
            new = manifest.with_query(adapter=ADAPTER, adapter_fusion=dict(fusion) if fusion else None)
        new = IndexManifest(new.build, new.query, files, file_digests(index_dir, files))
        write_manifest(index_dir, new)
    return new


__all__ = ["IndexStoreError", "LoadedIndex", "attach_adapter", "check_embedder", "document_from_dict",
           "load_index", "read_documents", "with_settings"]
