"""Small collections for the relevance stage's training and calibration: groups of 5 policy documents indexed on their
own (a collection the size of the default corpus), each asked its own documents' questions (answerable) and other
questions of the same split (not answerable there).  A relevance model fitted on one 216-document index only would
read a 4-document collection's evidence (BM25 IDF, how many candidates share a document) with the wrong scale.

Vectors are not re-embedded: the small indexes reuse the chunk vectors of data/policies-index (same documents, same
chunker, so the same chunk texts); queries are encoded by the real model.  Cached in data/relevance/cache/small.pkl.
"""
from __future__ import annotations

import pickle
import random
import tempfile
from pathlib import Path

import numpy as np

from eval.relevance.candidates import load_cached, CACHE, POLICIES_INDEX, fill
from eval.relevance.question_sets import Item, split_of

GROUP = 5
GROUPS = {"train": 24, "dev": 5}
SEED = 13


class _ReusedVectors:
    """The real model, but passages come from an existing index's vectors (by their embedded text)."""

    def __init__(self, real, loaded):
        self._real = real
        self.name, self.dim, self.max_tokens = real.name, real.dim, real.max_tokens
        self.query_prompt, self.passage_prompt = real.query_prompt, real.passage_prompt
        self._vec = {c.embed_text: np.asarray(loaded.vectors[i]) for i, c in enumerate(loaded.chunks)}

    def encode_queries(self, texts):
        return self._real.encode_queries(texts)

    def encode_passages(self, texts, progress=False):
        return np.stack([self._vec[t] for t in texts])  # a KeyError here means the chunking differs: rebuild

    def count_tokens(self, text):
        return self._real.count_tokens(text)


def small_items(pol: list[Item]) -> list[Item]:
    """Items over small collections (source "small", split train/dev), with candidates."""
    path = CACHE / "small.pkl"
    if path.exists():
        return load_cached(path)
    from index.embed import load_embedder
    from index.search import Searcher
    from index.store import IndexSettings, build_index, load_index

    loaded = load_index(POLICIES_INDEX)
    emb = _ReusedVectors(load_embedder(loaded.manifest.build.model.name), loaded)
    rng = random.Random(SEED)
    out: list[Item] = []
    root = Path(tempfile.mkdtemp(prefix="relsmall-"))
    for split, n_groups in GROUPS.items():
        docs = sorted(d for d in loaded.documents if split_of(d) == split)
        rng.shuffle(docs)
        questions = [q for q in pol if q.split == split]
        for g in range(min(n_groups, len(docs) // GROUP)):
            group = set(docs[g * GROUP:(g + 1) * GROUP])
            ix = root / f"{split}-{g}"
            build_index([loaded.documents[d] for d in sorted(group)], ix, emb, IndexSettings(), progress=False)
            inside = [q for q in questions if q.gold and {p.split("#")[0] for p in q.gold} <= group]
            outside = [q for q in questions if q.gold and not ({p.split("#")[0] for p in q.gold} & group)]
            ooc = [q for q in questions if not q.gold]
            negatives = rng.sample(outside, min(len(outside), 2 * len(inside))) + rng.sample(ooc, min(len(ooc), 10))
            items = ([Item(f"{q.qid}@s{g}", q.query, "small", split, q.kind, q.gold) for q in inside]
                     + [Item(f"{q.qid}@s{g}x", q.query, "small", split, "absent", frozenset()) for q in negatives])
            s = Searcher(load_index(ix), emb)
            fill(s, items)
            out.extend(items)
            print(f"  {split} group {g}: {len(inside)} answerable, {len(negatives)} not", flush=True)
    path.write_bytes(pickle.dumps(out))
    return out


def operating_points(stage_dir: Path, rates=(0.038, 0.05, 0.073, 0.10)) -> dict:
    """The stage at ``stage_dir`` (a training output or a shipped ``index/data/relevance/<model>/``) on the small dev
    collections: at its own threshold, false abstain (answerable questions without a confident hit), not-answerable
    questions with a confident hit and top-1 correct; the AUC of the best probability; and, at each false-abstain
    ``rate``, the threshold that gives it and the not-answerable share still confident there (stages compared at the
    same false-abstain rate, not at their own thresholds)."""
    import json

    from eval.relevance.candidates import load_policies
    from eval.relevance.metrics import separation
    from eval.relevance.scoring import RelevanceStage

    spec = json.loads((Path(stage_dir) / "stage.json").read_text(encoding="utf-8"))
    if "score" not in spec:  # the shipped layout (ship.py) -> the training one
        spec = {"score": spec["model"], "lgbm": spec["lgbm"], "features": spec.get("features"),
                "calibration": {**spec["calibration"], "threshold": spec["threshold"]}}
    stage = RelevanceStage(spec, Path(stage_dir), threads=2)
    best_a, best_n, top1 = [], [], []
    items = [i for i in small_items(load_policies()[0]) if i.split == "dev"]
    if stage.needs_sentences:
        from eval.relevance.sentences import add_sentence_cosines

        add_sentence_cosines(items)
    for i in items:
        p = stage.calibrator(stage.raw_scores(i.sig, i.hits)) if i.hits else np.zeros(1)
        if i.answerable and i.labels is not None and i.labels.any():
            best_a.append(p.max())
            top1.append(bool(i.labels[int(np.argmax(p))]))
        elif not i.answerable:
            best_n.append(p.max())
    a, n, t = np.asarray(best_a), np.asarray(best_n), stage.calibrator.threshold
    return {"threshold": t, "answerable": len(a), "not_answerable": len(n),
            "false_abstain": round(float((a < t).mean()), 4),
            "not_answerable_confident": round(float((n >= t).mean()), 4), "top1": round(float(np.mean(top1)), 4),
            "auc": separation(a, n),
            "at_false_abstain": {str(r): {"threshold": round(float(np.quantile(a, r)), 4),
                                          "not_answerable_confident": round(float((n >= np.quantile(a, r)).mean()), 4)}
                                 for r in rates}}


if __name__ == "__main__":  # python -m eval.relevance.small STAGE_DIR   ($POLICYQA_MODEL: the stage's model)
    import json
    import sys

    print(json.dumps(operating_points(Path(sys.argv[1])), indent=1))
