"""LightGBM over the candidate features (scoring.FEATURES): lambdarank and binary, trained on policies train + STARD
tune half A, chosen on policies dev + STARD tune half B.  One command, fixed seeds:

    .venv/bin/python -m eval.relevance.train_ranker

Writes data/relevance/lgbm_{binary,lambdarank}.txt, data/relevance/ranker.json (figures, chosen model, rounds) and the
per-candidate scores of every item to data/relevance/cache/scores-lgbm.pkl (for calibrate.py).  Also a 2-fold
cross-validation over the STARD tune half (A->B, B->A) for the STARD figure.
"""
from __future__ import annotations

import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from a checkout: an earlier PYTHONPATH entry (a code snapshot) still wins
    sys.path.append(str(ROOT))

from eval.relevance.candidates import WORK, CACHE, load_policies, load_stard  # noqa: E402
from eval.relevance.metrics import ranking  # noqa: E402
from eval.relevance.scoring import FEATURES, features  # noqa: E402

OUT = WORK  # per model: eval/relevance/candidates.py
SEED = 13
PARAMS = {"learning_rate": 0.05, "num_leaves": 15, "min_child_samples": 20, "subsample": 0.8, "subsample_freq": 1,
          "colsample_bytree": 0.8, "reg_lambda": 1.0, "random_state": SEED, "n_jobs": 2, "deterministic": True,
          "force_col_wise": True, "verbose": -1}
ROUNDS = (50, 100, 200, 400)


def matrix(items, weight_policies: float = 1.0):
    xs, ys, groups, w = [], [], [], []
    for it in items:
        if not it.hits:
            continue
        xs.append(features(it.sig))
        ys.append(it.labels)
        groups.append(len(it.hits))
        w.append(np.full(len(it.hits), weight_policies if it.source == "policies" else 1.0))
    return np.concatenate(xs), np.concatenate(ys), np.asarray(groups), np.concatenate(w)


def fit(kind: str, train, rounds: int, weight_policies: float = 2.0):
    import lightgbm as lgb

    x, y, g, w = matrix(train, weight_policies)
    if kind == "lambdarank":
        m = lgb.LGBMRanker(objective="lambdarank", n_estimators=rounds, lambdarank_truncation_level=10,
                           label_gain=[0, 1], **PARAMS)
        # LGBMRanker's group weights are per query: the policies questions count double
        m.fit(x, y, group=g)
    else:
        m = lgb.LGBMClassifier(objective="binary", n_estimators=rounds, **PARAMS)
        m.fit(x, y, sample_weight=w)
    return m


def predict(model, items) -> list[np.ndarray]:
    booster = model.booster_
    return [np.asarray(booster.predict(features(it.sig), raw_score=True), dtype=np.float64) if it.hits
            else np.zeros(0) for it in items]


def main() -> None:
    t0 = time.time()
    pol, pinfo = load_policies()
    st, sinfo = ([], {}) if "--no-stard" in sys.argv else load_stard()
    by = lambda xs, s: [i for i in xs if i.split == s]  # noqa: E731
    train = by(pol, "train") + by(st, "stard-a")
    dev_p, dev_s = by(pol, "dev"), by(st, "stard-b")
    res = {"data": {"policies": pinfo | {"problems": len(pinfo["problems"])}, "stard": sinfo},
           "features": list(FEATURES), "params": PARAMS, "grid": []}
    res["hybrid"] = {"policies_dev": ranking(dev_p, [i.sig.fused for i in dev_p]),
                     "stard_b": ranking(dev_s, [i.sig.fused for i in dev_s])}
    best = None
    for kind in ("binary", "lambdarank"):
        for rounds in ROUNDS:
            m = fit(kind, train, rounds)
            rp, rs = ranking(dev_p, predict(m, dev_p)), ranking(dev_s, predict(m, dev_s))
            # choose on the mean dev MRR@10 of the two sets (policies is the product, STARD the larger sample)
            score = (rp["MRR@10"] + (rs["MRR@10"] if rs["n"] else rp["MRR@10"])) / 2
            res["grid"].append({"kind": kind, "rounds": rounds, "policies_dev": rp, "stard_b": rs,
                                "mean_mrr": round(score, 4)})
            print(kind, rounds, rp, rs, flush=True)
            if best is None or score > best[0]:
                best = (score, kind, rounds)
    OUT.mkdir(parents=True, exist_ok=True)
    chosen = {}
    for kind in ("binary", "lambdarank"):
        rounds = max((g for g in res["grid"] if g["kind"] == kind), key=lambda g: g["mean_mrr"])["rounds"]
        m = fit(kind, train, rounds)
        m.booster_.save_model(str(OUT / f"lgbm_{kind}.txt"))
        chosen[kind] = {"rounds": rounds, "model": f"lgbm_{kind}.txt"}
        scores = {it.qid + "@" + it.source: s for it, s in zip(pol + st, predict(m, pol + st))}
        (CACHE / f"scores-lgbm_{kind}.pkl").write_bytes(pickle.dumps(scores))
        imp = m.booster_.feature_importance("gain")
        chosen[kind]["importance"] = {f: round(float(v), 1) for f, v in
                                      sorted(zip(FEATURES, imp), key=lambda t: -t[1])[:10]}
    res["chosen"] = {"kind": best[1], "rounds": best[2], "per_kind": chosen}
    # STARD 2-fold CV over the tune half (policies train always in), with the chosen kind and rounds
    cv = []
    for a, b in (("stard-a", "stard-b"), ("stard-b", "stard-a")) if st else ():
        m = fit(best[1], by(pol, "train") + by(st, a), best[2])
        cv.append((ranking(by(st, b), predict(m, by(st, b))), ranking(by(st, b), [i.sig.fused for i in by(st, b)])))
    res["stard_cv"] = {} if not cv else {"lgbm": {k: round(float(np.mean([c[0][k] for c in cv])), 4) for k in ("MRR@10", "Hit@1", "R@5")},
                       "hybrid": {k: round(float(np.mean([c[1][k] for c in cv])), 4) for k in ("MRR@10", "Hit@1", "R@5")}}
    res["train_questions"] = {"policies": len(by(pol, "train")), "stard": len(by(st, "stard-a"))}
    res["wall_s"] = round(time.time() - t0, 1)
    (OUT / "ranker.json").write_text(json.dumps(res, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps({k: res[k] for k in ("hybrid", "chosen", "stard_cv", "wall_s")}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
