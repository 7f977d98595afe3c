"""What a build may take from the index on disk: all of it when nothing changed, else the vectors of unchanged
chunks — and only from files that still match the sha256 their manifest records."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.store.errors import IndexStoreError
from index.store.layout import CHUNKS, VECTORS
from index.store.manifest import SCHEMA_VERSION, IndexManifest, altered_file, file_digests, files_intact, read_manifest_json, seal_of
from index.store.settings import BuildSettings, IndexSettings
from index.store.stage import model_abstain, shipped_stage_digest, stage_digest
from index.tokenize import default_stopwords, policy_terms

if TYPE_CHECKING:
    from index.embed import Embedder


def build_fingerprint(embedder: Embedder, settings: BuildSettings, max_tokens: int) -> str:
    """Equal fingerprints mean the same chunks, vectors and BM25 index would be built from the same documents.

    The passage precision (bf16 / fp32) is deliberately left out, here and in ``chunk_key``: bf16 vectors are within
    cosine 0.9998 of fp32 ones and retrieval figures are identical (README), so switching precision neither rebuilds
    an unchanged index nor re-embeds unchanged chunks; ``model.passage_precision`` says what the vectors were
    encoded with ("mixed" once both went into one index)."""
    model = [embedder.name, embedder.dim, embedder.query_prompt, embedder.passage_prompt, max_tokens]
    packaged = [policy_terms(), default_stopwords()]
    text = json.dumps([SCHEMA_VERSION, asdict(settings), model, packaged], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def reusable_vectors(index_dir: Path, embedder: Embedder) -> dict[str, np.ndarray]:
    """Vectors of the index on disk by chunk key, for a rebuild to take instead of encoding again."""
    # Vectors of the live index, by content key, when it was built by the same model and its chunks and vectors are
    # the recorded bytes (sha256, where recorded; else sizes); else nothing to reuse — an altered vector or chunk key
    # is never carried into the new index.  Read from the raw JSON so that an index of an older schema still gives
    # its vectors to the rebuild.
    try:
        raw = read_manifest_json(index_dir)
        model = (raw.get("build") or raw).get("model") or {}
        if model.get("name") != embedder.name or model.get("dim") != embedder.dim:
            return {}
        files, digests = raw.get("files") or {}, raw.get("file_sha256") or {}
        if any(name not in files for name in (CHUNKS, VECTORS)) or altered_file(
                index_dir, {n: files[n] for n in (CHUNKS, VECTORS)}, {n: digests[n] for n in digests
                                                                      if n in (CHUNKS, VECTORS)}):
            return {}
        vectors = np.load(index_dir / VECTORS, mmap_mode="r", allow_pickle=False)
        with open(index_dir / CHUNKS, encoding="utf-8") as fh:
            keys = [json.loads(line)["key"] for line in fh]
        return {key: vectors[i] for i, key in enumerate(keys)} if len(keys) == len(vectors) else {}
    except (IndexStoreError, OSError, ValueError, KeyError, AttributeError, TypeError, RecursionError):
        return {}


def unchanged_index(index_dir: Path, inputs_sha256: str, embedder: Embedder, settings: IndexSettings
                    ) -> IndexManifest | None:
    """The manifest of the index at ``index_dir`` if it was built from exactly these source files (same fingerprint,
    recorded only by an ingest without errors), with this model and these settings, and every one of its files is
    intact to the byte; else None and the ingest takes its normal path.  Called under the index lock."""
    try:
        raw = read_manifest_json(Path(index_dir))
        manifest = IndexManifest.from_json(raw, index_dir)
        max_tokens = min(settings.build.chunk_max_tokens, embedder.max_tokens)
        if (raw.get("manifest_sha256") != seal_of(raw) or manifest.build.inputs_sha256 != inputs_sha256
                or manifest.query.settings != settings.query
                or manifest.query.abstain != model_abstain(embedder)
                or stage_digest(Path(index_dir), manifest) != shipped_stage_digest(embedder)
                or manifest.build.fingerprint != build_fingerprint(embedder, settings.build, max_tokens)
                or not files_intact(Path(index_dir), manifest)):
            return None
        digests = dict(manifest.file_sha256)
        if not digests or set(digests) != set(manifest.files):
            return None
        return manifest if file_digests(Path(index_dir), manifest.files) == digests else None
    except (IndexStoreError, OSError, ValueError, KeyError, TypeError):
        return None
