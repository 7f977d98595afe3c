"""The relevance model that ships: a pointwise LightGBM (binary) over the candidates' evidence, trained with questions
the collection cannot answer — the team's out-of-corpus questions and, for "topic absent", **cross-corpus questions**
(policy questions asked of the statute index, STARD's lay questions asked of the policy index; every candidate of such
a question is a negative) — then Platt-calibrated on dev and given a threshold.  One command, fixed seeds:

    .venv/bin/python -m eval.relevance.train_relevance        # then: python -m eval.relevance.ship

Why pointwise: a listwise (lambdarank) score is only comparable within one question, so it cannot say that a question's
best candidate is still not an answer; the binary model's score is, and its query-level features (best cosine, best
coverage, unknown-word share) then matter.  Data: policies ``train`` + STARD tune half A (+ their cross-corpus copies)
to train; policies ``dev`` + STARD B (+ cross copies) to choose rounds, calibrate and pick the threshold.  ``--laws`` adds
the team's law questions (``law-train``, eval/data/laws) to training.  Never the default corpus nor STARD's held-out
half.  Writes data/relevance/relevance_binary.txt and stage.json (for ship.py).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from eval.relevance.candidates import (  # noqa: E402
    WORK, cross_items, load_laws, load_policies, load_stard)
from eval.relevance.metrics import ranking, separation  # noqa: E402
from eval.relevance.scoring import FEATURES, SENTENCE_FEATURES, features  # noqa: E402
from eval.relevance.small import small_items  # noqa: E402
from eval.relevance.train_ranker import PARAMS  # noqa: E402

OUT = WORK  # per model: eval/relevance/candidates.py
ROUNDS = (100, 200, 400)
#: The operating point: the lowest threshold whose dev false-abstain rate (answerable questions without a confident
#: hit) stays within this share, so that out-of-corpus questions get as few confident hits as possible around it.
MAX_FALSE_ABSTAIN = 0.05


#: Features whose scale depends on the collection's size and make-up rather than on the question and the provision:
#: the raw BM25 score (IDF grows with the collection), how many candidates share a document and that document's best
#: rank (a 4-document collection puts most candidates in one document).  ``--portable`` leaves them out.
COLLECTION_BOUND = ("bm25", "same_doc", "doc_first_rank")
NAMES = list(FEATURES)  # the columns trained on (main() narrows or widens them)


def feats(sig) -> np.ndarray:
    return features(sig, NAMES)


def matrix(items):
    items = [i for i in items if i.hits]
    return (np.concatenate([feats(i.sig) for i in items]), np.concatenate([i.labels for i in items]))


def top_prob(model, items, cal) -> dict[str, float]:
    """Each question's best calibrated probability (0 when it has no candidate)."""
    out = {}
    for i in items:
        out[i.qid + i.source] = float(cal(model.predict(feats(i.sig), raw_score=True)).max()) if i.hits else 0.0
    return out


def auc(pos: dict, neg: dict) -> float:
    """``separation`` of two questions -> best probability maps (the operating point's rates on 31 team questions
    move in steps of 3 %, the AUC does not)."""
    return separation(list(pos.values()), list(neg.values()))


def main() -> int:
    import argparse

    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--portable", action="store_true", help="leave out the collection-bound features")
    ap.add_argument("--small", action="store_true", help="also small 5-document collections (eval/relevance/small.py)")
    ap.add_argument("--laws", action="store_true", help="also the team's law questions (law-train) in training")
    ap.add_argument("--sentences", nargs="?", const=",".join(SENTENCE_FEATURES), default="",
                    help="also sentence-level features (best sentence's cosine; eval/relevance/sentences.py): all, "
                         "or a comma-separated choice of " + ", ".join(SENTENCE_FEATURES))
    ap.add_argument("--ooc-weight", type=float, default=1.0,
                    help="weight of the team's not-answerable questions' candidates in training (default 1)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"folder for stage.json and the model (default {OUT})")
    args = ap.parse_args()
    names = [f for f in FEATURES if not (args.portable and f in COLLECTION_BOUND)]
    chosen = [f for f in args.sentences.split(",") if f]
    if set(chosen) - set(SENTENCE_FEATURES):
        ap.error(f"unknown sentence features {sorted(set(chosen) - set(SENTENCE_FEATURES))}")
    names += [f for f in SENTENCE_FEATURES if f in chosen]
    NAMES[:] = names
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    pol, pinfo = load_policies()
    st, sinfo = load_stard()
    to_stard, to_pol = cross_items(pol, st)
    small = small_items(pol) if args.small else []
    laws, linfo = load_laws() if args.laws else ([], {})
    if args.sentences:
        from eval.relevance.sentences import add_sentence_cosines

        add_sentence_cosines(pol + st + to_stard + to_pol + small + laws)
    by = lambda xs, s: [i for i in xs if i.split == s]  # noqa: E731
    train = (by(pol, "train") + by(st, "stard-a") + by(to_stard, "train") + by(to_pol, "train") + by(small, "train")
             + by(laws, "law-train"))
    dev = by(pol, "dev") + by(st, "stard-b") + by(to_stard, "dev") + by(to_pol, "dev") + by(small, "dev")
    x, y = matrix(train)
    # the team's out-of-corpus questions (topic words match, the answer is absent) weigh ``--ooc-weight`` each
    w = np.concatenate([np.full(len(i.hits), args.ooc_weight if (not i.answerable and i.source == "policies")
                                else 1.0) for i in train if i.hits])
    print(f"train rows {len(y)} ({int(y.sum())} positive), {len(train)} questions; {time.time() - t0:.0f} s", flush=True)
    grid, best = [], None
    for rounds in ROUNDS:
        m = lgb.LGBMClassifier(objective="binary", n_estimators=rounds, **PARAMS).fit(x, y, sample_weight=w)
        b = m.booster_
        rp = ranking(by(pol, "dev"), [b.predict(feats(i.sig), raw_score=True) if i.hits else np.zeros(0)
                                      for i in by(pol, "dev")])
        rs = ranking(by(st, "stard-b"), [b.predict(feats(i.sig), raw_score=True) for i in by(st, "stard-b")])
        score = (rp["MRR@10"] + rs["MRR@10"]) / 2
        grid.append({"rounds": rounds, "policies_dev": rp, "stard_b": rs})
        print(rounds, rp, rs, flush=True)
        if best is None or score > best[0]:
            best = (score, rounds, b)
    booster = best[2]
    # Platt on the dev candidates (all dev sets together)
    dx, dy = matrix(dev)
    raw = booster.predict(dx, raw_score=True)
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(raw.reshape(-1, 1), dy)
    a, b0 = float(lr.coef_[0, 0]), float(lr.intercept_[0])

    def cal(s):
        return 1.0 / (1.0 + np.exp(-(a * np.asarray(s) + b0)))

    # the threshold: answerable dev questions keep a confident hit (within MAX_FALSE_ABSTAIN), OOC get as few as can be
    answerable = [i for i in by(pol, "dev") + by(st, "stard-b") + by(small, "dev") if i.answerable
                  and i.labels is not None and i.labels.any()]
    ooc_team = [i for i in by(pol, "dev") if not i.answerable]
    ooc_cross = by(to_stard, "dev") + by(to_pol, "dev") + [i for i in by(small, "dev") if not i.answerable]
    pa, pt, pc = (top_prob(booster, s, cal) for s in (answerable, ooc_team, ooc_cross))
    separation = {"answerable_vs_ooc_team": auc(pa, pt), "answerable_vs_ooc_cross": auc(pa, pc)}
    print("AUC of the best probability, answerable vs not answerable (dev):", separation, flush=True)
    curve = []
    for t in sorted(set(np.round(np.linspace(0.0, 0.6, 121), 4))):
        curve.append({"threshold": t, "false_abstain": round(np.mean([v < t for v in pa.values()]), 4),
                      "ooc_team_confident": round(np.mean([v >= t for v in pt.values()]), 4),
                      "ooc_cross_confident": round(np.mean([v >= t for v in pc.values()]), 4)})
    ok = [c for c in curve if c["false_abstain"] <= MAX_FALSE_ABSTAIN]
    chosen = max(ok, key=lambda c: c["threshold"])
    booster.save_model(str(out / "relevance_binary.txt"))
    stage = {"score": "lgbm", "lgbm": "relevance_binary.txt", "name": f"relevance_binary_{best[1]}",
             "features": names,
             "calibration": {"kind": "platt", "a": a, "b": b0, "threshold": chosen["threshold"]},
             "trained_by": "python -m eval.relevance.train_relevance && python -m eval.relevance.ship",
             "data": {"policies": {k: pinfo[k] for k in ("files", "sha256_16")}, "stard": sinfo,
                      "cross_questions": {"policies->stard": len(to_stard), "stard->policies": len(to_pol)},
                      "small_collection_questions": len(small),
                      "law_questions": {k: linfo[k] for k in ("files", "sha256_16")} if laws else None},
             "operating_point": chosen, "max_false_abstain": MAX_FALSE_ABSTAIN}
    (out / "stage.json").write_text(json.dumps(stage, ensure_ascii=False, indent=1), encoding="utf-8")
    (out / "relevance.json").write_text(json.dumps({"grid": grid, "rounds": best[1], "curve": curve,
                                                     "chosen": chosen, "separation": separation, "wall_s": round(time.time() - t0)},
                                                    ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps({"rounds": best[1], "platt": [a, b0], "chosen": chosen, "features": len(names)},
                     ensure_ascii=False))
    for c in curve[::10]:
        print(c)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
