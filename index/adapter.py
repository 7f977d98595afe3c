"""A learned linear query adapter: q' = normalise(q + q·W), trained for one model against its fixed passage vectors.

Passages are never re-embedded (the index does not change); only the query vector is moved towards the passages that
answer questions of that kind.  An adapter records the corpus it was trained for and is applied to that corpus only.  The adapter of a model ships in ``index/data/query_adapter-<model>.npz`` (W in float16,
384×384 for multilingual-e5-small: under 300 kB) and is retrained by ``python -m eval.adapter`` (see its docstring).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np


def adapter_filename(model_name: str) -> str:
    """The bundled file name of ``model_name``'s adapter."""
    return f"query_adapter-{re.sub(r'[^A-Za-z0-9.-]+', '_', model_name)}.npz"


@dataclass(frozen=True)
class QueryAdapter:
    """A residual linear map applied to (L2-normalised) query vectors; the result is L2-normalised again."""

    model: str
    weight: np.ndarray  # (dim, dim) float32
    meta: dict

    def apply(self, queries: np.ndarray) -> np.ndarray:
        """Adapted, normalised copies of one query vector (dim,) or of a batch (n, dim)."""
        q = np.asarray(queries, dtype=np.float32)
        out = q + q @ self.weight
        norms = np.linalg.norm(out, axis=-1, keepdims=True)
        return (out / np.where(norms > 0, norms, 1.0)).astype(np.float32)

    def save(self, path: Path) -> Path:
        """Write the adapter (W as float16 plus a JSON header)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = json.dumps({"model": self.model, **self.meta}, ensure_ascii=False, sort_keys=True)
        with open(path, "wb") as f:
            np.savez_compressed(f, weight=self.weight.astype(np.float16), header=np.frombuffer(header.encode(), np.uint8))
        return path

    @classmethod
    def read(cls, path: Path) -> QueryAdapter:
        """Read an adapter written by ``save``."""
        with np.load(Path(path), allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes().decode())
            weight = z["weight"].astype(np.float32)
        model = header.pop("model")
        if weight.ndim != 2 or weight.shape[0] != weight.shape[1]:
            raise ValueError(f"{path}: adapter weight must be square, got {weight.shape}")
        return cls(model, weight, header)


def bundled_path(model_name: str) -> Path:
    """Where the adapter of ``model_name`` is bundled (it may not exist)."""
    return Path(str(resources.files("index").joinpath("data", adapter_filename(model_name))))


def load_adapter(model_name: str, dim: int, corpus_sha256: str | None = None) -> QueryAdapter | None:
    """The bundled adapter of ``model_name`` for this dimension and this corpus, else None (queries unchanged).

    An adapter trained for one corpus (``meta["index_corpus_sha256"]``, the manifest's ``corpus_sha256``) applies to
    that corpus only: the STARD adapter lifts STARD's held-out questions but lowers the policy questions (English
    most), so it must not move every query of every index.
    """
    path = bundled_path(model_name)
    if not path.is_file():
        return None
    adapter = QueryAdapter.read(path)
    if adapter.model != model_name or adapter.weight.shape[0] != dim:
        return None
    scope = adapter.meta.get("index_corpus_sha256")
    if scope is not None and scope != corpus_sha256:
        return None
    return adapter
