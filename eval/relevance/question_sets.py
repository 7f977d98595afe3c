"""The question sets the relevance stage is trained and judged on, as ``Item``s without candidates: the team's policy
questions (gold anchors resolved to provision ids, split by document), STARD's tune half (A train, B dev) and the
team's law questions (split by main article).  ``candidates.py`` searches them and caches their candidates; the
dev-figure tools (``devpath.py``) ask them through the product path.  Never the default corpus nor STARD's held-out
half.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eval.relevance.scoring import Signals

ROOT = Path(__file__).resolve().parents[2]
STARD = ROOT.parent / "shared" / "bench" / "stard"
BATCHES = ROOT / "eval" / "data" / "policies"
LAW_BATCHES = ROOT / "eval" / "data" / "laws"


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
