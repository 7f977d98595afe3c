"""Vectors a Milvus ingest may take instead of encoding again: from the collection of the index's previous build, and
from a local embedded index named by ``POLICYQA_REUSE_VECTORS`` — by chunk key (model + prompt + text), the same
rule as an embedded rebuild (``index.store.reuse``)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from index.milvus import MilvusTarget, check_collection, collection_record, describe
from index.store.errors import IndexStoreError
from index.store.layout import CHUNKS
from index.store.manifest import altered_file, read_manifest_json
from index.store.reuse import reusable_vectors

REUSE_ENV = "POLICYQA_REUSE_VECTORS"  # os.pathsep-separated embedded index folders built with the same model
_BATCH = 1000  # rows per fetch


def milvus_reusable(client, target: MilvusTarget, index_dir: Path, embedder, wanted: set[str]
                    ) -> dict[str, np.ndarray]:
    """Vectors for the keys in ``wanted``: from the embedded indexes named by POLICYQA_REUSE_VECTORS, then from the
    collection that the folder at ``index_dir`` names (the previous build, on the same server, same model, its build
    record intact).  Anything that does not check out gives nothing: the chunk is encoded again."""
    found: dict[str, np.ndarray] = {}
    for folder in filter(None, os.environ.get(REUSE_ENV, "").split(os.pathsep)):
        for key, vec in reusable_vectors(Path(folder), embedder).items():
            if key in wanted and key not in found:
                found[key] = np.asarray(vec, np.float32)
    missing = wanted - found.keys()
    if missing:
        found.update(_from_collection(client, target, Path(index_dir), embedder, missing))
    return found


def _from_collection(client, target: MilvusTarget, index_dir: Path, embedder, wanted: set[str]
                     ) -> dict[str, np.ndarray]:
    try:
        raw = read_manifest_json(index_dir)
        build = raw["build"]
        backend, model = build.get("backend") or {}, build.get("model") or {}
        if backend.get("kind") != "milvus" or model.get("name") != embedder.name or model.get("dim") != embedder.dim:
            return {}
        old = MilvusTarget.parse(backend["uri"])
        if (old.host, old.port) != (target.host, target.port):  # the previous build lives on another server
            return {}
        files, digests = raw.get("files") or {}, raw.get("file_sha256") or {}
        if CHUNKS not in files or altered_file(index_dir, {CHUNKS: files[CHUNKS]},
                                               {k: v for k, v in digests.items() if k == CHUNKS}):
            return {}
        physical = MilvusTarget(old.host, old.port, backend["physical"])
        expected = collection_record(model["name"], model["dim"], build["fingerprint"], build["corpus_sha256"],
                                     int(build["counts"]["chunks"]))
        check_collection(describe(client, physical, old), expected, physical, old)
        rows: dict[int, str] = {}
        wanted = set(wanted)
        with open(index_dir / CHUNKS, encoding="utf-8") as fh:
            for row, line in enumerate(fh):
                key = json.loads(line)["key"]
                if key in wanted:
                    wanted.discard(key)  # the first row holding a key is enough
                    rows[row] = key
        out: dict[str, np.ndarray] = {}
        order = sorted(rows)
        for start in range(0, len(order), _BATCH):
            part = order[start:start + _BATCH]
            got = client.query(physical.collection, filter=f"row in [{','.join(map(str, part))}]",
                               output_fields=["vector"])
            for g in got:
                vec = np.asarray(g["vector"], np.float32)
                if vec.shape == (embedder.dim,):
                    out[rows[int(g["row"])]] = vec
        return out
    except (IndexStoreError, OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    except Exception:  # noqa: BLE001 — a pymilvus error: a failed reuse only means encoding again
        return {}
