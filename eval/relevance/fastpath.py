"""The fast path's cosine cut for a model (``index.embed.FAST_PATH_COS``), by the rule every cut so far was chosen with:
the highest cut at which at most 5 % of the team's answerable policies dev questions (as written) are abstained.

    POLICYQA_MODEL=<model> python -m eval.relevance.fastpath INDEX

The fast path (``--fast``: no relevance stage) abstains when a Chinese question's best dense cosine is under the cut
AND no top-5 hit holds 45 % of its IDF-weighted words (``Searcher._weak``); this replays that test for candidate cuts
with the index's own searcher (the model's query vectors) and prints one JSON line.  On today's question files it gives
policyqa's cut as 0.61 (shipped 0.62, chosen in session 6 on the files of then).
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

from eval.relevance.question_sets import BATCHES, policy_questions  # noqa: E402

RATE = 0.05
COVER = 0.45


def evidence(searcher, questions) -> np.ndarray:
    """(n, 2): each question's best dense cosine over the whole index and the best top-5 coverage."""
    fast = searcher.with_settings(relevance=False, abstain=False)
    vectors = np.asarray(fast._ix.vectors, np.float32)  # once, not per question
    out = []
    for q in questions:
        best = float((vectors @ fast.query_vector(q)).max())
        rows = [fast._row_of[h.chunk_id] for h in fast.query(q, k=5).hits]
        cover = float(fast._ix.lexical.coverage(q, np.asarray(rows, np.int64)).max(initial=0.0))
        out.append((best, cover))
    return np.asarray(out)


def cut(ev: np.ndarray, rate: float = RATE, cover: float = COVER) -> tuple[float, float]:
    """(the highest cosine cut, on a 0.01 grid, abstaining on at most ``rate`` of the questions; that share)."""
    for c in (k / 100 for k in range(95, 0, -1)):  # exact hundredths (np.arange's steps drift)
        share = float(np.mean((ev[:, 0] < c) & (ev[:, 1] < cover)))
        if share <= rate:
            return c, round(share, 4)
    return 0.0, 0.0


def main() -> None:
    from index.search import Searcher

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", type=Path)
    args = ap.parse_args()
    s = Searcher.load(args.index)
    items = [i for i in policy_questions(s.documents, sorted(BATCHES.glob("batch_[1-6].jsonl")))[0]
             if i.split == "dev" and i.gold and any("\u4e00" <= ch <= "\u9fff" for ch in i.query)]
    c, share = cut(evidence(s, [i.query for i in items]))
    print(json.dumps({"index": str(args.index), "model": s._ix.manifest.build.model.name, "questions": len(items),
                      "cos_cut": c, "abstained": share, "rate": RATE}))


if __name__ == "__main__":
    main()
