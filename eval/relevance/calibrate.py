"""Compare the scorers on dev, combine LightGBM with the cross-encoder, calibrate the winner to P(relevant) and pick the
"confident" threshold.  One command (after train_ranker.py and train_reranker.py):

    .venv/bin/python -m eval.relevance.calibrate [--ce ce-L4] [--stage lgbm+ce@5]

Scorers: hybrid (fused score, today), lgbm (binary), lgbm-rank (lambdarank), ce (cross-encoder logit over the hybrid
top-K), lgbm+ce (LightGBM raw score + w * cross-encoder logit over LightGBM's top-K; the others keep LightGBM's order
below them).  w and K are chosen on dev (mean MRR@10 of policies dev and STARD B).

Calibration: isotonic and Platt, fitted on the dev candidates of policies dev + STARD B; ECE (10 bins) is reported
2-fold cross-fitted by question (fit on one half of the dev questions, measured on the other), per set.  Threshold:
on policies dev, the highest top-candidate probability at which no answerable question is left without a confident
hit, and the out-of-corpus false-confident rate there; the whole curve goes to data/relevance/tradeoff.json.

Writes data/relevance/stage.json (what scoring.RelevanceStage loads), data/relevance/calibration.json and
data/relevance/results.json.  The test split is scored once, end to end, by eval_stage.py.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from a checkout: an earlier PYTHONPATH entry (a code snapshot) still wins
    sys.path.append(str(ROOT))

from eval.relevance.candidates import WORK, CACHE, load_policies, load_stard  # noqa: E402
from eval.relevance.metrics import abstention, ece, ranking, reliability, tradeoff  # noqa: E402
from eval.relevance.scoring import Calibrator  # noqa: E402

OUT = WORK  # per model: eval/relevance/candidates.py
SEED = 13


def _load(name: str) -> dict | None:
    p = CACHE / f"scores-{name}.pkl"
    return pickle.loads(p.read_bytes()) if p.exists() else None


def combine(lgbm: np.ndarray, ce: np.ndarray, w: float, k: int) -> np.ndarray:
    """LightGBM score + w * CE logit for LightGBM's top-k; the rest below them in LightGBM order (the CE is not
    run on them: each gets the worst scored candidate's CE logit)."""
    n = len(lgbm)
    if n == 0:
        return lgbm
    top = np.argsort(-lgbm, kind="stable")[:k]
    filled = np.full(n, float(ce[top].min()))
    filled[top] = ce[top]
    return lgbm + w * filled


def fit_calibrator(kind: str, scores: np.ndarray, labels: np.ndarray) -> Calibrator:
    if kind == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, labels)
        return Calibrator("isotonic", [float(x) for x in iso.X_thresholds_], [float(y) for y in iso.y_thresholds_])
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e4, max_iter=1000).fit(scores.reshape(-1, 1), labels)
    return Calibrator("platt", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def flat(items, scores):
    s = np.concatenate([x for x in scores if len(x)]) if items else np.zeros(0)
    y = np.concatenate([i.labels for i, x in zip(items, scores) if len(x)]) if items else np.zeros(0)
    return s, y


def crossfit_ece(kind: str, items, scores, sets) -> dict:
    """ECE per set, each question's probabilities from a calibrator fitted on the other half of the dev questions."""
    rng = np.random.default_rng(SEED)
    fold = rng.integers(0, 2, len(items))
    probs = [None] * len(items)
    for f in (0, 1):
        tr = [i for i in range(len(items)) if fold[i] != f]
        cal = fit_calibrator(kind, *flat([items[i] for i in tr], [scores[i] for i in tr]))
        for i in range(len(items)):
            if fold[i] == f:
                probs[i] = cal(scores[i])
    out = {}
    for name, sel in sets.items():
        p, y = flat([items[i] for i in sel], [probs[i] for i in sel])
        # the top candidate's probability is what the "confident" decision reads: its ECE on its own (answerable
        # and out-of-corpus questions alike; label = the top candidate is gold)
        top = [(float(np.max(probs[i])), float(items[i].labels[int(np.argmax(scores[i]))]))
               for i in sel if len(scores[i])]
        tp, ty = (np.asarray(v) for v in zip(*top))
        out[name] = {"ece": round(ece(p, y), 4), "pairs": int(len(p)), "positives": int(y.sum()),
                     "ece_top1": round(ece(tp, ty), 4), "top1_mean_p": round(float(tp.mean()), 3),
                     "top1_gold_rate": round(float(ty.mean()), 3)}
    return out, probs


def heuristic(items) -> dict:
    """Today's abstention rule (index/search.py: best cosine < 0.85 and no top-5 hit covering 45 % of the query's
    IDF-weighted words -> "未找到") on the same questions, as the baseline operating point."""
    from eval.relevance.candidates import POLICIES_INDEX
    from index.search import Searcher

    s = Searcher.load(POLICIES_INDEX)
    abst = {i.qid: not s.query(i.query, 10).hits for i in items}
    ans = [i for i in items if i.answerable]
    ooc = [i for i in items if not i.answerable]
    return {"answerable": len(ans), "ooc": len(ooc),
            "answerable_without_confident": sum(abst[i.qid] for i in ans),
            "ooc_false_confident": sum(not abst[i.qid] for i in ooc),
            "ooc_false_confident_rate": round(sum(not abst[i.qid] for i in ooc) / max(len(ooc), 1), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ce", default="ce-L4")
    ap.add_argument("--stage", default=None, help="scorer to write to stage.json (default: the dev winner)")
    args = ap.parse_args()
    pol, pinfo = load_policies()
    st, sinfo = load_stard()
    dev = [i for i in pol if i.split == "dev"] + [i for i in st if i.split == "stard-b"]
    key = lambda i: i.qid + "@" + i.source  # noqa: E731
    src = {"hybrid": {key(i): i.sig.fused for i in pol + st}}
    for name in ("lgbm_binary", "lgbm_lambdarank"):
        if (s := _load(name)) is not None:
            src[name] = s
    ce = _load(args.ce)
    if ce is not None:
        src["ce"] = ce
    sets = {"policies_dev": [n for n, i in enumerate(dev) if i.source == "policies"],
            "stard_b": [n for n, i in enumerate(dev) if i.source == "stard"]}
    res = {"data": {"policies": pinfo | {"problems": len(pinfo["problems"])}, "stard": sinfo},
           "dev_questions": {k: len(v) for k, v in sets.items()},
           "dev_ooc": sum(not i.answerable for i in dev), "scorers": {}}

    def figures(scores):
        return {name: ranking([dev[n] for n in sel], [scores[n] for n in sel]) for name, sel in sets.items()}

    table = {name: [s[key(i)] for i in dev] for name, s in src.items()}
    # cross-encoder alone reranks the hybrid top-K (its logit for the rest is unknown: kept below, hybrid order)
    if "ce" in table:
        for k in (5, 10):
            table[f"ce@{k}"] = [np.where(np.arange(len(c)) < k, c, -50.0 - np.arange(len(c))) for c in table["ce"]]
        del table["ce"]
    best_lgbm = max((n for n in table if n.startswith("lgbm")),
                    key=lambda n: np.mean([f["MRR@10"] for f in figures(table[n]).values()]), default=None)
    combos = []
    if best_lgbm and ce is not None:
        for k in (3, 5):  # the CE was run on the hybrid top-15: LightGBM's top-5 lies within it
            for w in (0.1, 0.25, 0.5, 1.0, 2.0):
                sc = [combine(l, ce[key(i)], w, k) for l, i in zip(table[best_lgbm], dev)]
                f = figures(sc)
                combos.append({"k": k, "w": w, **{n: v for n, v in f.items()},
                               "mean_mrr": round(float(np.mean([v["MRR@10"] for v in f.values()])), 4)})
        res["combo_grid"] = combos
        for k in (3, 5):
            bw = max((c for c in combos if c["k"] == k), key=lambda c: c["mean_mrr"])["w"]
            table[f"lgbm+ce@{k}"] = [combine(l, ce[key(i)], bw, k) for l, i in zip(table[best_lgbm], dev)]
            res.setdefault("combo_w", {})[k] = bw
    res["heuristic_today"] = heuristic([i for i in dev if i.source == "policies"])
    for name, scores in table.items():
        entry = {"ranking": figures(scores)}
        for kind in ("isotonic", "platt"):
            e, probs = crossfit_ece(kind, dev, scores, sets)
            pol_sel = sets["policies_dev"]
            items_p = [dev[n] for n in pol_sel]
            probs_p = [probs[n] for n in pol_sel]
            tops_ans = [float(np.max(p)) for i, p in zip(items_p, probs_p) if i.answerable and len(p)]
            t = min(tops_ans) if tops_ans else 0.5
            entry[kind] = {"ece": e, "zero_miss": abstention(items_p, probs_p, t),
                           "miss_5pct": abstention(items_p, probs_p, float(np.quantile(tops_ans, 0.05))),
                           "operating_points": [abstention(items_p, probs_p, float(np.quantile(tops_ans, m)))
                                                for m in (0.1, 0.2, 0.3, 0.5)]}
        res["scorers"][name] = entry
        print(name, json.dumps(entry["ranking"], ensure_ascii=False), flush=True)
    # the winner by mean dev MRR@10; ``--stage`` names the one to ship (e.g. the best that fits the latency budget)
    mean = lambda n: np.mean([f["MRR@10"] for f in res["scorers"][n]["ranking"].values()])  # noqa: E731
    res["winner"] = max(res["scorers"], key=mean)
    name = args.stage or res["winner"]
    # choose the calibrator by the top candidate's ECE (what the confident/not decision reads), mean of the two sets
    cal_kind = min(("isotonic", "platt"),
                   key=lambda k: np.mean([v["ece_top1"] for v in res["scorers"][name][k]["ece"].values()]))
    cal = fit_calibrator(cal_kind, *flat(dev, table[name]))
    pol_dev = [i for i in dev if i.source == "policies"]
    probs = [cal(table[name][n]) for n in sets["policies_dev"]]
    curve = tradeoff(pol_dev, probs)
    tops_ans = [float(np.max(p)) for i, p in zip(pol_dev, probs) if i.answerable and len(p)]
    cal.threshold = float(min(tops_ans))
    res["shipped"] = name
    res["calibration"] = {"scorer": name, **cal.to_json(),
                          "in_sample_policies_dev": abstention(pol_dev, probs, cal.threshold),
                          "reliability_policies_dev": reliability(*flat(pol_dev, probs))}
    spec = {"score": "fused"}
    if name.startswith("lgbm"):
        spec = {"score": "lgbm", "lgbm": f"{best_lgbm if '+' in name else name}.txt"}
    if "ce@" in name:
        k = int(name.split("@")[1])
        meta = json.loads((OUT / args.ce / "meta.json").read_text())
        from eval.relevance.reranker_model import base_folder

        spec.update({"score": "lgbm+ce" if name.startswith("lgbm") else "ce", "ce_top": k,
                     "ce": {"onnx": f"cache/{args.ce}.onnx", "tokenizer": str(base_folder() / "tokenizer.json"),
                            "max_length": meta["max_length"], "layers": meta["layers"]}})
        if name.startswith("lgbm"):
            spec["w"] = res["combo_w"][k]
    spec["calibration"] = cal.to_json()
    spec["name"] = name
    if spec["score"] != "fused":
        from eval.relevance.scoring import FEATURES

        spec["features"] = list(FEATURES)  # the column order the LightGBM model was trained on
    spec["data"] = {"policies_questions_sha256_16": pinfo.get("sha256_16"), "stard": sinfo,
                    "policies_index_corpus_sha256": pinfo.get("index_corpus_sha256")}
    spec["trained_by"] = ("python -m eval.relevance.train_ranker && python -m eval.relevance.train_reranker "
                          f"&& python -m eval.relevance.calibrate --ce {args.ce} --stage {name}")
    (OUT / "stage.json").write_text(json.dumps(spec, indent=1))
    (OUT / "tradeoff.json").write_text(json.dumps(curve, indent=0))
    (OUT / "calibration.json").write_text(json.dumps({"scorer": name, **cal.to_json()}, indent=1))
    (OUT / "results.json").write_text(json.dumps(res, ensure_ascii=False, indent=1, default=float))
    print("winner", res["winner"], "shipped", name, cal_kind, "threshold", round(cal.threshold, 4))


if __name__ == "__main__":
    main()
