"""An index whose vectors and BM25 index live in Milvus: building the collection and the local folder beside it, and
opening it for search (the backend is checked against the local manifest).

The collection is written under a fresh name (``<collection>__<8 hex>``, recorded in the manifest as ``physical``) and
the local folder naming it is swapped in only once it is complete and loaded, so searches never see a half-written
collection; the earlier builds' collections are then dropped.  (Milvus aliases would let other clients follow the
switch by name, but milvus-lite 2.5.1 answers UNIMPLEMENTED to every alias call.)  The local folder (documents, chunks, tokenizer + BM25 vocabulary, relevance stage, manifest
naming the collection) is built and swapped in like an embedded index.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np

from index.chunk import chunk_documents
from index.lexical import LexicalIndex
from index.milvus import MilvusSettings, MilvusTarget, call_failure, collection_record, connect
from index.normalize import fold
from index.store.atomic import build_folder, swap_in
from index.store.layout import BM25_DIR
from index.store.milvus_reuse import milvus_reusable
from index.store.manifest import BuildSection, IndexManifest, ModelInfo, QuerySection, file_digests, write_manifest
from index.store.parts import BuildReport, assemble_vectors, chunk_key, dist_version, lexical_texts, write_texts
from index.store.settings import IndexSettings
from index.store.stage import copy_shipped_stage, model_abstain
from index.tokenize import ChineseTokenizer
from index.types import Document

LEXICON = "lexicon.json"  # in BM25_DIR: {"size": n, "vocab": {token: [id, df]}}
TEXT_CHARS = 8000  # VARCHAR limit is 65,535 bytes; a chunk is <= 512 model tokens (~1,500 characters)


def build_milvus(docs: list[Document], lines: dict[str, str], index_dir: Path, embedder, settings: IndexSettings,
                 target: MilvusTarget, fingerprint: str, chash: str, progress: bool, t0: float, encode, versions):
    """Chunk, embed and BM25-weight ``docs``; write the collection and the local folder.  Returns the manifest."""
    bs = settings.build
    ms = MilvusSettings.from_env()  # index type, shards, replicas, consistency: a wrong value fails before anything
    client = connect(target)  # fails first, before any embedding, when the server is not there
    max_tokens = min(bs.chunk_max_tokens, embedder.max_tokens)
    chunks = chunk_documents(docs, embedder.count_tokens, max_tokens, bs.chunk_overlap, bs.embed_context)
    keys = [chunk_key(embedder, c.embed_text) for c in chunks]
    reuse = milvus_reusable(client, target, index_dir, embedder, set(keys))  # unchanged chunks: not encoded again
    index_type = ms.index_type(len(chunks), bs.hnsw_threshold)
    index_params = _index_params(index_type, ms, bs, len(chunks))
    record = collection_record(embedder.name, embedder.dim, fingerprint, chash, len(chunks))
    # the collection (schema, vector index type) is created before any embedding: a server that refuses the index
    # type (milvus-lite refuses HNSW, which AUTO picks above the HNSW threshold) fails now, not after an hour of work
    physical = _create_collection(client, target, embedder.dim, index_type, index_params, ms, bs, record)
    tmp = None
    try:
        vectors, todo = assemble_vectors(embedder, chunks, keys, reuse, encode, progress)
        t_embed = time.perf_counter()
        by_id = {d.id: d for d in docs}
        lex_texts = lexical_texts(docs, chunks, bs.lexical_context)
        tokenizer = ChineseTokenizer.for_corpus(docs)
        lexical = LexicalIndex.build(lex_texts, tokenizer, bs.bm25_k1, bs.bm25_b, progress)
        rows_lex, vocab, df = _row_weights(lexical, len(chunks))
        _fill_collection(client, target, physical, chunks, vectors, rows_lex, lex_texts, by_id, ms)
        tmp = build_folder(index_dir)
        write_texts(tmp, docs, lines, chunks, keys)
        (tmp / BM25_DIR).mkdir()
        tokenizer.save(tmp / BM25_DIR)
        (tmp / BM25_DIR / LEXICON).write_text(json.dumps(
            {"size": len(chunks), "vocab": {t: [i, int(df[i])] for t, i in vocab.items()}}, ensure_ascii=False),
            encoding="utf-8")
        query = QuerySection(settings.query, model_abstain(embedder), None, None,
                             copy_shipped_stage(embedder, tmp, progress=progress))
        build = BuildSection(
            model=ModelInfo(embedder.name, embedder.dim, embedder.query_prompt, embedder.passage_prompt,
                            embedder.max_tokens, getattr(embedder, "precision", None)),
            settings=bs, fingerprint=fingerprint, corpus_sha256=chash,
            counts={"documents": len(docs), "provisions": sum(len(d.provisions) for d in docs),
                    "chunks": len(chunks), "encoded": len(todo), "bm25_vocab": len(vocab)},
            tokenizer={"name": "jieba", "mode": "search", "dictionary_sha256": tokenizer.dictionary_hash,
                       "user_words": len(tokenizer.user_words), "stopwords": len(tokenizer.stopwords)},
            chunker={"max_tokens": max_tokens, "overlap": bs.chunk_overlap, "embed_context": bs.embed_context,
                     "splitter": "RecursiveCharacterTextSplitter"},
            dense={"type": index_type.lower(), "hnsw_threshold": bs.hnsw_threshold, "metric": "inner_product",
                   "hnsw_m": bs.hnsw_m if index_type == "HNSW" else None},
            built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            build_seconds=round(time.perf_counter() - t0, 3), embed_seconds=round(t_embed - t0, 3),
            versions={**versions, "pymilvus": dist_version("pymilvus")}, embedded_by=getattr(encode, "record", None),
            backend={"kind": "milvus", "uri": target.spec, "collection": target.collection, "physical": physical,
                     "consistency_level": ms.consistency, "index_type": index_type, "index_params": index_params,
                     "nprobe": ms.nprobe if index_type.startswith("IVF") else None, "shards": ms.shards,
                     "replicas": ms.replicas})
        files = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        manifest = IndexManifest(build, query, files, file_digests(tmp, files))
        write_manifest(tmp, manifest)
        swap_in(tmp, index_dir)
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        _drop_quietly(client, physical)
        raise
    _retire(client, target, physical)
    return BuildReport(index_dir, manifest, len(todo), len(chunks) - len(todo), False, time.perf_counter() - t0)


def _row_weights(lexical: LexicalIndex, n: int) -> tuple[list[dict], dict[str, int], np.ndarray]:
    """Each row's {token id: BM25 weight} (bm25s's precomputed Lucene weights), the vocabulary and the df array."""
    rows: list[dict] = [{} for _ in range(n)]
    if not n:
        return rows, {}, np.zeros(0, np.int64)
    m = lexical.bm25.scores
    indptr, indices, data = (np.asarray(m[k]) for k in ("indptr", "indices", "data"))
    df = np.diff(indptr).astype(np.int64)
    tokens = np.repeat(np.arange(len(df)), df)
    for tid, row, w in zip(tokens.tolist(), indices.tolist(), data.tolist()):
        rows[row][tid] = w
    vocab = dict(lexical.bm25.vocab_dict)
    if len(vocab) > len(df):  # bm25s keeps an entry for the empty token beyond its matrix: df 0
        df = np.concatenate([df, np.zeros(len(vocab) - len(df), np.int64)])
    return rows, vocab, df


def _index_params(index_type: str, ms: MilvusSettings, bs, chunks: int) -> dict:
    """The vector index's build parameters (HNSW: the embedded index's M / efConstruction)."""
    if index_type == "HNSW":
        return {"M": bs.hnsw_m, "efConstruction": bs.hnsw_ef_construction}
    if index_type.startswith("IVF"):
        params = {"nlist": max(1, min(ms.nlist, chunks))}  # no more lists than vectors
        return {**params, "m": 48, "nbits": 8} if index_type == "IVF_PQ" else params  # 384 = 48 sub-vectors of 8
    return {}


def _create_collection(client, target: MilvusTarget, dim: int, index_type: str, index_params: dict,
                       ms: MilvusSettings, bs, record: dict) -> str:
    """Create ``<collection>__<hex>`` with its schema and indexes (empty); returns that name."""
    from pymilvus import DataType, Function, FunctionType

    physical = f"{target.collection}__{uuid.uuid4().hex[:8]}"
    try:
        schema = client.create_schema(auto_id=False, description=json.dumps(record, sort_keys=True))
        schema.add_field("row", DataType.INT64, is_primary=True)
        schema.add_field("chunk_id", DataType.VARCHAR, max_length=512)
        schema.add_field("doc_id", DataType.VARCHAR, max_length=512)
        schema.add_field("region", DataType.VARCHAR, max_length=1024)
        schema.add_field("issuer", DataType.VARCHAR, max_length=1024)
        schema.add_field("year", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("lex", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                         analyzer_params={"tokenizer": "jieba"})
        schema.add_field("text_bm25", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(Function(name="text_bm25", function_type=FunctionType.BM25,
                                     input_field_names=["text"], output_field_names=["text_bm25"]))
        index = client.prepare_index_params()
        index.add_index("vector", index_type=index_type, metric_type="IP", params=index_params)
        index.add_index("lex", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        index.add_index("text_bm25", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                        params={"bm25_k1": bs.bm25_k1, "bm25_b": bs.bm25_b})
        for field in ("doc_id", "year"):
            index.add_index(field, index_type="INVERTED")
        client.create_collection(physical, schema=schema, index_params=index, consistency_level=ms.consistency,
                                 num_shards=ms.shards)
    except Exception as exc:
        _drop_quietly(client, physical)
        raise call_failure(exc, target) from None
    return physical


def _fill_collection(client, target: MilvusTarget, physical: str, chunks, vectors: np.ndarray, rows_lex: list[dict],
                     lex_texts: list[str], by_id: dict, ms: MilvusSettings) -> None:
    """Insert every chunk, flush and load the collection (with ``ms.replicas`` replicas)."""
    try:
        for start in range(0, len(chunks), 500):
            client.insert(physical, [_entity(i, chunks[i], vectors[i], rows_lex[i], lex_texts[i], by_id)
                                     for i in range(start, min(start + 500, len(chunks)))])
        client.flush(physical)
        if ms.replicas > 1:  # a cluster with that many query nodes (create_collection loaded one replica)
            client.release_collection(physical)
            client.load_collection(physical, replica_number=ms.replicas)
        else:
            client.load_collection(physical)
    except Exception as exc:
        raise call_failure(exc, target) from None


def _drop_quietly(client, physical: str) -> None:
    """Drop a collection this build created, if it exists (the server may be the reason we are here)."""
    try:
        if client.has_collection(physical):
            client.drop_collection(physical)
    except Exception:
        pass


def _retire(client, target: MilvusTarget, keep: str) -> None:
    """Drop the collections of earlier builds of this index (``<collection>__*``) once the new folder is in place."""
    try:
        for name in client.list_collections():
            if name.startswith(target.collection + "__") and name != keep:
                client.drop_collection(name)
    except Exception as exc:
        raise call_failure(exc, target) from None


def _entity(i: int, chunk, vector: np.ndarray, lex: dict, text: str, by_id: dict) -> dict:
    doc = by_id[chunk.doc_id]
    return {"row": i, "chunk_id": chunk.id, "doc_id": chunk.doc_id, "region": fold(doc.region or ""),
            "issuer": fold(doc.issuer or ""), "year": int(doc.year) if doc.year is not None else -1,
            "vector": np.asarray(vector, np.float32).tolist(), "lex": lex, "text": text[:TEXT_CHARS]}


def open_milvus(index_dir: Path, manifest: IndexManifest):
    """(MilvusBackend, MilvusLexicon) of a Milvus index: connects, and refuses a collection whose build record is not
    this manifest's (another model, corpus or build) with the fix."""
    from index.milvus import check_collection, describe
    from index.milvus_backend import MilvusBackend, MilvusLexicon

    b = manifest.build
    named = MilvusTarget.parse(b.backend["uri"])
    address = os.environ.get("POLICYQA_MILVUS_ADDRESS")  # host:port where this machine reaches the same server
    if address:
        named = MilvusTarget.parse(f"milvus://{address}/{named.collection}")
    client = connect(named)  # the error names the URI in use
    target = replace(named, collection=b.backend["physical"])
    expected = collection_record(b.model.name, b.model.dim, b.fingerprint, b.corpus_sha256, int(b.counts["chunks"]))
    check_collection(describe(client, target, named), expected, target, named)
    lex_dir = Path(index_dir) / BM25_DIR
    data = json.loads((lex_dir / LEXICON).read_text(encoding="utf-8"))
    vocab = {t: int(v[0]) for t, v in data["vocab"].items()}
    df = np.zeros(len(vocab), np.int64)
    for t, (i, d) in data["vocab"].items():
        df[int(i)] = int(d)
    lexicon = MilvusLexicon(ChineseTokenizer.load(lex_dir), vocab, df, int(data["size"]), None)
    nprobe = os.environ.get("POLICYQA_MILVUS_NPROBE") or b.backend.get("nprobe") or MilvusSettings.nprobe
    settings = MilvusSettings(nprobe=int(nprobe))
    backend = MilvusBackend(client, target, int(data["size"]), lexicon, b.settings.hnsw_ef_search,
                            b.backend.get("index_type", "FLAT"), settings)
    return backend, lexicon
