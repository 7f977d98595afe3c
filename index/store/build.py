"""Build (or update) an index folder atomically, reusing the vectors of unchanged chunks; attach query-time parts."""
from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.chunk import chunk_documents
from index.dense import DenseIndex
from index.lexical import LexicalIndex
from index.store.atomic import build_folder, folder_lock, swap_in
from index.store.errors import IndexStoreError, write_error
from index.store.guard import check_index_target
from index.store.reuse import build_fingerprint, reusable_vectors
from index.store.layout import BM25_DIR, DENSE, VECTORS
from index.store.manifest import (
    BuildSection, IndexManifest, ModelInfo, QuerySection, altered_file, file_digests, read_manifest,
    write_manifest)
from index.store.parts import (
    BuildReport, assemble_vectors, chunk_key, corpus_hash, doc_json, lexical_texts, versions, write_texts)
from index.store.settings import IndexSettings
from index.store.stage import copy_shipped_stage, model_abstain, replace_stage, shipped_stage_digest, stage_digest
from index.tokenize import ChineseTokenizer
from index.types import Document

if TYPE_CHECKING:  # only the protocol type; the model code is imported when an embedder is built
    from index.embed import Embedder
    from index.store.ray_embed import RayPlan


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


def _old_manifest(index_dir: Path) -> IndexManifest | None:
    try:
        return read_manifest(index_dir)
    except IndexStoreError:
        return None


def build_index(
    documents: Iterable[Document],
    index_dir: Path,
    embedder: Embedder,
    settings: IndexSettings = IndexSettings(),
    progress: bool = True,
    lock_timeout: float = 600.0,
    inputs_sha256: str | None = None,
    backend: str | None = None,
    ray: RayPlan | None = None,
) -> BuildReport:
    """Build (or update) the index at ``index_dir`` atomically, reusing vectors of unchanged chunks.

    ``inputs_sha256`` (the ingest's fingerprint of the source files, ``pipeline.inputs_fingerprint``) is recorded so
    that the next ingest of the very same files can skip reading and parsing them (``unchanged_index``).  The query
    section keeps what an earlier ``policyqa tune`` attached (adapter) unless the model changed.
    ``backend``: None for the embedded index (FAISS + bm25s files), or ``milvus://host:port/collection`` (the
    vectors and BM25 weights go to that collection, the rest to ``index_dir``: ``index.store.milvus_store``).
    """
    t0 = time.perf_counter()
    docs = list(documents)
    ids = [d.id for d in docs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"duplicate document id {dup!r}: document ids must be unique")
    index_dir = Path(index_dir)
    check_index_target(index_dir)  # never swap away (and delete) a user's file or folder named by mistake
    try:
        with folder_lock(index_dir, lock_timeout):  # which clears build folders left by a killed build
            check_index_target(index_dir)
            encode = _encode
            if ray is not None:
                from index.store.ray_embed import RayEncoder

                encode = RayEncoder(ray)
            if backend is not None:
                return _build_milvus(docs, index_dir, embedder, settings, progress, backend, t0, encode)
            return _build_locked(docs, index_dir, embedder, settings, progress, inputs_sha256, t0, encode)
    except OSError as exc:  # read-only file system, full disk, no permission: one line with the fix
        raise write_error(exc, index_dir) from None


def _build_locked(docs: list[Document], index_dir: Path, embedder: Embedder, settings: IndexSettings,
                  progress: bool, inputs_sha256: str | None, t0: float, encode=_encode) -> BuildReport:
    bs = settings.build
    max_tokens = min(bs.chunk_max_tokens, embedder.max_tokens)
    fingerprint = build_fingerprint(embedder, bs, max_tokens)
    lines = {d.id: doc_json(d) for d in docs}  # serialised once: hashed now, written later
    chash = corpus_hash(docs, lines)
    old = _old_manifest(index_dir)
    if (old and old.build.corpus_sha256 == chash and old.build.fingerprint == fingerprint
            and altered_file(index_dir, old.files, old.file_sha256) is None):  # sha256 too: same-size edits
        # the model's thresholds, as a rebuild would record them
        new = old.with_query(settings=settings.query, abstain=model_abstain(embedder)).with_build(
            inputs_sha256=inputs_sha256)
        if stage_digest(index_dir, old) != shipped_stage_digest(embedder):
            new = replace_stage(index_dir, new, embedder)  # the model's stage changed: the new one, no rebuild
        elif not old.file_sha256:
            new = IndexManifest(new.build, new.query, new.files, file_digests(index_dir, new.files))
        if new != old:  # only query-time settings or the inputs' fingerprint changed: rewrite the manifest
            write_manifest(index_dir, new)
        return BuildReport(index_dir, new, 0, 0, True, time.perf_counter() - t0)

    chunks = chunk_documents(docs, embedder.count_tokens, max_tokens, bs.chunk_overlap, bs.embed_context)
    keys = [chunk_key(embedder, c.embed_text) for c in chunks]
    reuse = reusable_vectors(index_dir, embedder)
    vectors, todo = assemble_vectors(embedder, chunks, keys, reuse, encode, progress)
    t_embed = time.perf_counter()
    old_precision = old.build.model.passage_precision if (old and reuse) else None
    precision = _vectors_precision(getattr(embedder, "precision", None), old_precision,
                                   encoded=len(todo), reused=len(chunks) - len(todo))

    tokenizer = ChineseTokenizer.for_corpus(docs)
    lexical = LexicalIndex.build(lexical_texts(docs, chunks, bs.lexical_context), tokenizer, bs.bm25_k1, bs.bm25_b,
                                 progress)
    dense = DenseIndex.build(vectors, bs.hnsw_threshold, bs.hnsw_m, bs.hnsw_ef_construction, bs.hnsw_ef_search)

    tmp = build_folder(index_dir)
    try:
        write_texts(tmp, docs, lines, chunks, keys)
        np.save(tmp / VECTORS, vectors, allow_pickle=False)
        dense.save(tmp / DENSE)
        lexical.save(tmp / BM25_DIR)
        query = _carried_query_section(old, embedder, index_dir, tmp, settings, progress)
        build = BuildSection(
            model=ModelInfo(embedder.name, embedder.dim, embedder.query_prompt, embedder.passage_prompt,
                            embedder.max_tokens, precision),
            settings=bs, fingerprint=fingerprint, corpus_sha256=chash,
            counts={"documents": len(docs), "provisions": sum(len(d.provisions) for d in docs),
                    "chunks": len(chunks), "encoded": len(todo),
                    "bm25_vocab": len(getattr(lexical.bm25, "vocab_dict", None) or {})},
            tokenizer={"name": "jieba", "mode": "search", "dictionary_sha256": tokenizer.dictionary_hash,
                       "user_words": len(tokenizer.user_words), "stopwords": len(tokenizer.stopwords)},
            chunker={"max_tokens": max_tokens, "overlap": bs.chunk_overlap, "embed_context": bs.embed_context,
                     "splitter": "RecursiveCharacterTextSplitter"},
            dense={"type": dense.kind, "hnsw_threshold": bs.hnsw_threshold, "metric": "inner_product",
                   "hnsw_m": bs.hnsw_m if dense.kind == "hnsw" else None},
            inputs_sha256=inputs_sha256,
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            build_seconds=round(time.perf_counter() - t0, 3), embed_seconds=round(t_embed - t0, 3),
            versions=versions(), embedded_by=getattr(encode, "record", None) if todo else None)
        files = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = IndexManifest(build, query, files, file_digests(tmp, files))
        write_manifest(tmp, manifest)  # written last: a directory without it is incomplete
        swap_in(tmp, index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildReport(index_dir, manifest, len(todo), len(chunks) - len(todo), False, time.perf_counter() - t0)


def _build_milvus(docs: list[Document], index_dir: Path, embedder: Embedder, settings: IndexSettings,
                  progress: bool, backend: str, t0: float, encode=_encode) -> BuildReport:
    from index.milvus import MilvusTarget
    from index.store.milvus_store import build_milvus

    bs = settings.build
    lines = {d.id: doc_json(d) for d in docs}
    fingerprint = build_fingerprint(embedder, bs, min(bs.chunk_max_tokens, embedder.max_tokens))
    return build_milvus(docs, lines, index_dir, embedder, settings, MilvusTarget.parse(backend), fingerprint,
                        corpus_hash(docs, lines), progress, t0, encode, versions())


def _carried_query_section(old: IndexManifest | None, embedder: Embedder, index_dir: Path, tmp: Path,
                           settings: IndexSettings, progress: bool = False) -> QuerySection:
    """The new index's query section: these settings, the model's abstention thresholds and relevance stage (shipped
    with the model: ``embedder.relevance_dir``, copied into the index), and the adapter that ``policyqa tune``
    attached to the previous index when it was made for the same model (its file is copied)."""
    relevance = copy_shipped_stage(embedder, tmp, previous=index_dir if old else None, progress=progress)
    adapter = fusion = None
    if old and old.query.adapter and old.build.model.name == embedder.name and old.build.model.dim == embedder.dim:
        src = index_dir / old.query.adapter
        name = old.query.adapter
        if src.is_file() and name in old.files and altered_file(index_dir, {name: old.files[name]},
                                                                  old.file_sha256) is None:  # never an altered one
            shutil.copy2(src, tmp / old.query.adapter)
            adapter, fusion = old.query.adapter, old.query.adapter_fusion
    return QuerySection(settings.query, model_abstain(embedder), adapter, fusion, relevance)


def _vectors_precision(new: str | None, old: str | None, encoded: int, reused: int) -> str | None:
    """Precision of the index's vectors: this build's, the reused ones', or "mixed"."""
    if not reused:
        return new
    if not encoded:
        return old
    return new if new == old else "mixed"
