"""Ship the chosen relevance stage with the model: copy what ``calibrate.py`` chose (``data/relevance/stage.json``)
into ``index/data/relevance/<model>/`` in the format ``index.relevance.RelevanceStage`` reads.  One command:

    .venv/bin/python -m eval.relevance.ship

An index built with that model copies the stage in and names it in its manifest (index/store/stage.py); an existing
index gets it on its next ingest without re-embedding anything.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from index.relevance import FEATURES, RelevanceStage  # noqa: E402

from eval.relevance.candidates import MODEL, WORK  # noqa: E402


def ship(source: Path, model: str = MODEL, dest_root: Path = ROOT / "index" / "data" / "relevance") -> Path:
    """Write ``dest_root/<model>/stage.json`` (+ the LightGBM model) from the training side's ``stage.json``."""
    spec = json.loads((source / "stage.json").read_text(encoding="utf-8"))
    kind = spec.get("score")
    if kind != "lgbm":
        raise SystemExit(f"only a LightGBM stage can ship (the cross-encoder would not fit the ~30 MB budget as it "
                         f"is trained here); {source / 'stage.json'} chose {kind!r}")
    cal = dict(spec["calibration"])
    threshold = float(cal.pop("threshold"))
    dest = dest_root / re.sub(r"[^A-Za-z0-9.-]+", "_", model)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / spec["lgbm"], dest / "ranker.txt")
    out = {
        "model": "lgbm", "lgbm": "ranker.txt", "features": list(spec.get("features") or FEATURES),
        "calibration": cal, "threshold": threshold, "top_n": int(spec.get("top_n", 30)), "trained_for": model,
        "trained_by": spec.get("trained_by", "python -m eval.relevance.train_ranker && python -m "
                                             "eval.relevance.calibrate && python -m eval.relevance.ship"),
        "data": spec.get("data"),
        "ranker_sha256": hashlib.sha256((dest / "ranker.txt").read_bytes()).hexdigest(),
    }
    (dest / "stage.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    RelevanceStage.load(dest)  # loads as the product will
    return dest


def main() -> int:
    """Command line entry."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=WORK)
    ap.add_argument("--model", default=MODEL)
    args = ap.parse_args()
    print(f"shipped to {ship(args.source, args.model)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
