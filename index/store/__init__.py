"""The index folder: settings, the typed manifest, lock-and-swap, build with vector reuse, verified loading.

settings (BuildSettings, QuerySettings) · manifest (IndexManifest, the one source of truth) · atomic (lock, swap,
shared with the model build) · guard (what may be an index, what an ingest never reads) · build (build_index) ·
parts (what both backends build with: BuildReport, chunk keys, corpus hash) · reuse (unchanged_index, reusable vectors; sha256-checked) · load (load_index, attach_adapter) · milvus_store (an index
whose vectors and BM25 weights live in a Milvus collection: build_milvus, open_milvus)
"""
from index.store.atomic import folder_lock as index_lock
from index.store.build import build_index
from index.store.parts import BuildReport, chunk_key, corpus_hash
from index.store.reuse import build_fingerprint, unchanged_index
from index.store.errors import (
    FIX, IndexAlteredError, IndexCorruptError, IndexLockedError, IndexMismatchError, IndexNotFoundError, IndexStoreError)
from index.store.layout import ADAPTER, BM25_DIR, CHUNKS, DENSE, DOCUMENTS, MANIFEST, VECTORS
from index.store.load import (
    LoadedIndex, attach_adapter, check_embedder, document_from_dict, load_index, read_documents, with_settings)
from index.store.manifest import SCHEMA_VERSION, IndexManifest, read_manifest, read_manifest_json
from index.store.settings import BuildSettings, IndexSettings, QuerySettings

__all__ = [
    "ADAPTER", "BM25_DIR", "CHUNKS", "DENSE", "DOCUMENTS", "FIX", "MANIFEST", "SCHEMA_VERSION", "VECTORS",
    "BuildReport", "BuildSettings", "IndexAlteredError", "IndexCorruptError", "IndexLockedError", "IndexManifest",
    "IndexMismatchError", "IndexNotFoundError", "IndexSettings", "IndexStoreError", "LoadedIndex", "QuerySettings",
    "attach_adapter", "build_fingerprint", "build_index", "check_embedder", "chunk_key", "corpus_hash", "document_from_dict",
    "index_lock", "load_index", "read_documents", "read_manifest", "read_manifest_json", "unchanged_index",
    "with_settings"]
