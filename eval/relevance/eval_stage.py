"""End-to-end check of the shipped stage (data/relevance/stage.json) through scoring.RelevanceStage only — the code
path a product would run: hybrid top-30 (abstention off) -> rerank -> P(relevant) -> confident or "nothing found".

    .venv/bin/python -m eval.relevance.eval_stage --split dev      # must reproduce calibrate.py's dev figures
    .venv/bin/python -m eval.relevance.eval_stage --split test     # ONCE, at the very end

Figures: MRR@10 / Hit@1 / R@5 (answerable), ECE (10 bins) of every candidate's probability, the threshold's
abstention figures (answerable without a confident hit, out-of-corpus false-confident rate), and the stage's own
time per search (1 thread), for the hybrid order and for the stage. Written to data/relevance/eval-<split>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from a checkout: an earlier PYTHONPATH entry (a code snapshot) still wins
    sys.path.append(str(ROOT))

from eval.relevance.candidates import WORK, POLICIES_INDEX  # noqa: E402
from eval.relevance.question_sets import Hitlite, files_hash, policy_files, policy_questions  # noqa: E402
from eval.relevance.metrics import abstention, ece, ranking  # noqa: E402
from eval.relevance.scoring import TOP_N, RelevanceStage  # noqa: E402

OUT = WORK  # per model: eval/relevance/candidates.py


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="dev")
    ap.add_argument("--live", action="store_true", help="the question files as they are now, not the frozen copy")
    args = ap.parse_args()
    from index.search import Searcher

    stage = RelevanceStage.load(OUT, threads=1)
    s = Searcher.load(POLICIES_INDEX).with_settings(abstain=False)
    files = policy_files(live=args.live)
    items, problems = policy_questions(s.documents, files)
    items = [i for i in items if i.split == args.split]
    s.query("预热", 5)
    hybrid, staged, probs, ms = [], [], [], []
    for it in items:
        hits = list(s.query(it.query, TOP_N).hits)
        it.hits = [Hitlite(h.doc_id, h.provision_id, h.chunk_id, h.title, tuple(h.path), h.text, float(h.score))
                   for h in hits]
        it.labels = np.asarray([it.key(h) in it.gold for h in hits], dtype=np.int64)
        t0 = time.perf_counter()
        ranked = stage.rerank(s, it.query, hits)
        ms.append((time.perf_counter() - t0) * 1000)
        pos = {id(h): n for n, h in enumerate(hits)}
        sc = np.zeros(len(hits))
        pr = np.zeros(len(hits))
        for r, (h, p) in enumerate(ranked):
            sc[pos[id(h)]] = len(hits) - r
            pr[pos[id(h)]] = p
        hybrid.append(np.asarray([h.score for h in hits]))
        staged.append(sc)
        probs.append(pr)
    allp = np.concatenate([p for p in probs if len(p)])
    ally = np.concatenate([i.labels for i, p in zip(items, probs) if len(p)])
    res = {"split": args.split, "stage": stage.spec.get("name"), "questions": len(items),
           "questions_sha256_16": files_hash(files), "files": [f.name for f in files],
           "hybrid": ranking(items, hybrid), "stage_ranking": ranking(items, staged),
           "ece": round(ece(allp, ally), 4),
           "abstention": abstention(items, probs, stage.calibrator.threshold if stage.calibrator else 0.5),
           "stage_ms": {"p50": round(float(np.percentile(ms, 50)), 2), "p95": round(float(np.percentile(ms, 95)), 2)},
           "load_avg": os.getloadavg()}
    (OUT / f"eval-{args.split}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
