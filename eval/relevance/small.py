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


def groups(doc_ids, pol: list[Item]):
    """The small collections, train groups first, as (split, number, its documents, its answerable questions, the
    questions it cannot answer): ``GROUP`` documents of a split, the split's questions whose gold is all inside,
    twice as many whose gold is all outside, and up to 10 of the split's out-of-corpus questions (seed ``SEED``)."""
    rng = random.Random(SEED)
    for split, n_groups in GROUPS.items():
        docs = sorted(d for d in doc_ids if split_of(d) == split)
        rng.shuffle(docs)
        questions = [q for q in pol if q.split == split]
        for g in range(min(n_groups, len(docs) // GROUP)):
            group = set(docs[g * GROUP:(g + 1) * GROUP])
            inside = [q for q in questions if q.gold and {p.split("#")[0] for p in q.gold} <= group]
            outside = [q for q in questions if q.gold and not ({p.split("#")[0] for p in q.gold} & group)]
            ooc = [q for q in questions if not q.gold]
            negatives = rng.sample(outside, min(len(outside), 2 * len(inside))) + rng.sample(ooc, min(len(ooc), 10))
            yield split, g, group, inside, negatives


def _small_index(loaded, emb, group, folder: Path):
    from index.store import IndexSettings, build_index, load_index

    build_index([loaded.documents[d] for d in sorted(group)], folder, emb, IndexSettings(), progress=False)
    return load_index(folder)


def small_items(pol: list[Item]) -> list[Item]:
    """Items over small collections (source "small", split train/dev), with candidates."""
    path = CACHE / "small.pkl"
    if path.exists():
        return load_cached(path)
    from index.embed import load_embedder
    from index.search import Searcher
    from index.store import load_index

    loaded = load_index(POLICIES_INDEX)
    emb = _ReusedVectors(load_embedder(loaded.manifest.build.model.name), loaded)
    out: list[Item] = []
    root = Path(tempfile.mkdtemp(prefix="relsmall-"))
    for split, g, group, inside, negatives in groups(loaded.documents, pol):
        items = ([Item(f"{q.qid}@s{g}", q.query, "small", split, q.kind, q.gold) for q in inside]
                 + [Item(f"{q.qid}@s{g}x", q.query, "small", split, "absent", frozenset()) for q in negatives])
        s = Searcher(_small_index(loaded, emb, group, root / f"{split}-{g}"), emb)
        fill(s, items)
        out.extend(items)
        print(f"  {split} group {g}: {len(inside)} answerable, {len(negatives)} not", flush=True)
    path.write_bytes(pickle.dumps(out))
    return out


def product_path(stage_dir: Path, settings: dict) -> dict:
    """The small dev collections searched as a user searches them (stage at ``stage_dir`` included), with the index's
    query settings and with ``settings`` changed, side by side: false abstain (answerable questions without a
    confident hit), not-answerable questions with one, top-1 correct.  For a query-time change, which the cached
    candidates of ``operating_points`` cannot show (session 15's rule used it for ``everyday_dense``)."""
    from eval.relevance.candidates import load_policies
    from eval.relevance.devpath import with_stage
    from index.embed import load_embedder
    from index.search import Searcher
    from index.store import load_index

    loaded = load_index(POLICIES_INDEX)
    emb = _ReusedVectors(load_embedder(loaded.manifest.build.model.name), loaded)
    root = Path(tempfile.mkdtemp(prefix="relsmall-path-"))
    tally = {name: {"false_abstain": [], "not_answerable_confident": [], "top1": []} for name in ("index", "set")}
    for split, g, group, inside, negatives in groups(loaded.documents, load_policies()[0]):
        if split != "dev":
            continue  # train groups are still drawn, so the dev groups are operating_points' own
        base = Searcher(with_stage(_small_index(loaded, emb, group, root / f"dev-{g}"), stage_dir, emb), emb)
        for name, s in (("index", base), ("set", base.with_settings(**settings))):
            for q in inside:
                r = s.query(q.query)
                tally[name]["false_abstain"].append(not r.found)
                tally[name]["top1"].append(bool(r.hits) and r.hits[0].provision_id in q.gold)
            tally[name]["not_answerable_confident"].extend(s.query(q.query).found for q in negatives)
    return {"settings": settings, **{name: {k: round(float(np.mean(v)), 4) for k, v in t.items()}
                                     for name, t in tally.items()},
            "answerable": len(tally["index"]["top1"]), "not_answerable": len(tally["index"]["not_answerable_confident"])}


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


if __name__ == "__main__":  # python -m eval.relevance.small STAGE_DIR [--set NAME=VALUE …]   ($POLICYQA_MODEL: its model)
    import argparse
    import json

    from eval.relevance.devpath import _value

    ap = argparse.ArgumentParser(description="the small dev collections: a stage's operating points, or with --set "
                                             "the product path with query settings changed beside the index's own")
    ap.add_argument("stage", type=Path)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a query setting")
    args = ap.parse_args()
    if args.set:
        print(json.dumps(product_path(args.stage, {k: _value(v) for k, v in (x.split("=", 1) for x in args.set)})))
    else:
        print(json.dumps(operating_points(args.stage), indent=1))
