"""Does a cross-encoder *verifier* over the stage's top few candidates tell answered questions from unanswered ones?

The shipped stage (LightGBM over the hybrid evidence) ranks well but its confidence cannot separate a question the
collection answers from a neighbouring-topic one it does not (AUC ~0.70 on the team's dev questions): both get a
provision with the same words.  A cross-encoder reads question and provision together.  This script scores the
stage's top ``--top`` candidates of every policies **dev** question with a trained cross-encoder (``train_reranker``,
``--passage chunk`` or ``sentence``), combines ``lgbm + w * logit`` for those (the rest stay below, in LightGBM
order) and reports, per ``w``: ranking (MRR@10, Hit@1), the AUC of the best score (answerable vs the team's
out-of-corpus questions) and, at the threshold where 5 % of answerable dev questions lose their confident hit, the
share of out-of-corpus questions still confident.  It also prints the two seed questions' top scores on the bundled
corpus (``data/index``), which decide nothing here.

    python -m eval.relevance.verify NAME [--top 3]     # NAME = a train_reranker --name (ONNX in the cache)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from eval.relevance.candidates import CACHE, MODEL, load_policies  # noqa: E402
from eval.relevance.metrics import ranking, separation  # noqa: E402
from eval.relevance.scoring import CE_PASSAGE, CE_QUERY, OnnxCrossEncoder, features  # noqa: E402
from eval.relevance.train_reranker import OUT, passage  # noqa: E402
from eval.relevance.train_relevance import MAX_FALSE_ABSTAIN  # noqa: E402

SEEDS = ("去外地住院花的钱回来能报吗", "在外地住院能不能直接结算", "在大湾区看病能直接用医保报销不",
         "养老金每年涨多少", "今天天气怎么样")
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def shipped_booster():
    import lightgbm as lgb

    from index.embed import shipped_relevance_dir

    folder = shipped_relevance_dir(MODEL)
    spec = json.loads((folder / "stage.json").read_text(encoding="utf-8"))
    return lgb.Booster(model_file=str(folder / spec["lgbm"])), tuple(spec["features"])


def combine(lg: np.ndarray, ce: dict, w: float) -> np.ndarray:
    """LightGBM raw + w * logit for the scored candidates; the others keep their order below the lowest of them."""
    out = lg - 1e3
    for i, logit in ce.items():
        out[i] = lg[i] + w * logit
    return out


def threshold_at(pos_top: np.ndarray, share: float = MAX_FALSE_ABSTAIN) -> float:
    """The highest threshold at which at most ``share`` of the answerable questions fall below it."""
    return float(np.quantile(pos_top, share, method="lower"))


def report(items, lgs, ces, w: float) -> dict:
    scores = [combine(lg, ce, w) for lg, ce in zip(lgs, ces)]
    tops = np.array([s.max() for s in scores])
    ans = np.array([it.answerable for it in items])
    t = threshold_at(tops[ans])
    return {"w": w, **{k: v for k, v in ranking(items, scores).items() if k in ("MRR@10", "Hit@1", "R@5")},
            "auc_ooc": separation(tops[ans], tops[~ans]), "threshold": round(t, 3),
            "ooc_confident": round(float((tops[~ans] >= t).mean()), 3)}


def seed_items():
    """The seed questions as candidate items of the bundled corpus's index (hybrid top-30, stage off)."""
    from eval.relevance.candidates import fill
    from eval.relevance.question_sets import Item
    from index.search import Searcher

    items = [Item(f"seed{i}", q, "seed", "seed", "seed", frozenset()) for i, q in enumerate(SEEDS)]
    return fill(Searcher.load(ROOT / "data" / "index"), items)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--top", type=int, default=3)
    args = ap.parse_args()
    from eval.relevance.reranker_model import base_folder
    from eval.relevance.sentences import add_sentence_cosines

    meta = json.loads((OUT / args.name / "meta.json").read_text())
    mode = meta.get("passage", "chunk")
    ce = OnnxCrossEncoder(CACHE / f"{args.name}.onnx", base_folder() / "tokenizer.json", meta["max_length"], 1)
    booster, names = shipped_booster()
    pol, _ = load_policies()
    dev = [it for it in pol if it.split == "dev" and it.hits]
    seeds = seed_items()
    if mode == "sentence":
        add_sentence_cosines(dev + seeds, top=15)
    out = {"name": args.name, "top": args.top, "passage": mode}
    for label, items in (("dev", dev), ("seed", seeds)):
        lgs, ces, ms = [], [], []
        for it in items:
            lg = np.asarray(booster.predict(features(it.sig, names), raw_score=True, num_threads=1), np.float64)
            top = np.argsort(-lg, kind="stable")[:args.top]
            t0 = time.perf_counter()
            logits = ce.logits(CE_QUERY + it.sig.query, [CE_PASSAGE + passage(it, int(i), mode) for i in top])
            ms.append((time.perf_counter() - t0) * 1000)
            lgs.append(lg)
            ces.append(dict(zip(top.tolist(), logits.tolist())))
        if label == "dev":
            out["dev"] = [report(items, lgs, ces, w) for w in WEIGHTS]
            out["ce_ms_p50_p95"] = [round(float(np.percentile(ms, 50)), 1), round(float(np.percentile(ms, 95)), 1)]
            out["dev_sizes"] = {"answerable": sum(it.answerable for it in items),
                                "ooc": sum(not it.answerable for it in items)}
        else:
            out["seed"] = {it.query: {"lgbm_top": [it.hits[i].text[:24] for i in np.argsort(-lg)[:2]],
                                      "lgbm": round(float(lg.max()), 3),
                                      "ce": {it.hits[i].text[:24]: round(v, 3) for i, v in c.items()}}
                           for it, lg, c in zip(items, lgs, ces)}
    print(json.dumps(out, ensure_ascii=False, indent=1))
    (CACHE / f"verify-{args.name}-top{args.top}.json").write_text(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
