"""A learned linear query adapter: q' = normalise(q + q·W), trained for one model against its fixed passage vectors.

Passages are never re-embedded (the index does not change); only the query vector is moved towards the passages that
answer questions of that kind.  An adapter is corpus-specific tuning, so it is never switched on by itself: a user
attaches one to an index with ``policyqa tune --index DIR --adapter FILE`` (copied into the index folder and named in
its manifest's query section).  The STARD adapter (``eval/data/stard-query_adapter-<model>.npz``, W in float16,
384×384 for multilingual-e5-small: under 300 kB) is retrained by ``python -m eval.adapter`` (see its docstring).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
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
