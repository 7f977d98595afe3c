"""Labelled questions and qrels: load them, and resolve verbatim anchors to provision ids of an index."""
from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from index.types import Document

#: The bundled question set for the default corpus.
DEFAULT_QUESTIONS = Path(__file__).resolve().parent / "data" / "questions.jsonl"
#: Kind of a question that has no answer in the corpus (gold = []).
OUT_OF_CORPUS = "out_of_corpus"

_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Gold:
    """One gold item: the document (file stem or merged-from stem) and a verbatim anchor in the provision."""

    doc: str
    anchor: str
    provision_id: str | None = None  # informative; the anchor is the source of truth


@dataclass(frozen=True)
class Question:
    """One evaluation question."""

    id: str
    query: str
    kind: str = "query"
    split: str = "all"
    gold: tuple[Gold, ...] = ()

    @property
    def answerable(self) -> bool:
        """False for out-of-corpus questions (no gold at all)."""
        return bool(self.gold)


@dataclass(frozen=True)
class Resolution:
    """Qrels resolved from anchors, and the anchors that matched no provision."""

    qrels: dict[str, dict[str, int]]
    unresolved: tuple[tuple[str, str, str], ...]  # (question id, doc, anchor)


def load_questions(path: Path | str = DEFAULT_QUESTIONS, split: str | None = None) -> list[Question]:
    """Read a questions JSONL file (``id, query, kind, split, gold``), optionally one split only."""
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                gold = tuple(Gold(g["doc"], g["anchor"], g.get("provision_id")) for g in row.get("gold", []))
                q = Question(str(row["id"]), row["query"], row.get("kind", "query"), row.get("split", "all"), gold)
            except (KeyError, TypeError, json.JSONDecodeError) as e:
                raise ValueError(f"{path}:{n}: not a question record ({e})") from e
            if split is None or q.split == split:
                out.append(q)
    return out


def normalize_anchor(text: str) -> str:
    """NFKC and every whitespace character removed: a PDF's hard line breaks and a web page's lines then compare equal."""
    return _WS.sub("", unicodedata.normalize("NFKC", text))


def document_aliases(doc: Document) -> set[str]:
    """Names a gold ``doc`` may use for this document: its id and the stem of every merged source path."""
    names = {doc.id}
    for s in doc.sources:
        p = PurePosixPath(s.path.replace("\\", "/"))
        names.update({str(p.with_suffix("")), p.stem})
    return names


def resolve_gold(questions: Iterable[Question], documents: Mapping[str, Document] | Iterable[Document]) -> Resolution:
    """Map each gold anchor to every provision of its document whose normalised text contains it (grade 1)."""
    docs = list(documents.values()) if isinstance(documents, Mapping) else list(documents)
    by_alias: dict[str, list[Document]] = {}
    for d in docs:
        for a in document_aliases(d):
            by_alias.setdefault(a, []).append(d)
    norm_cache: dict[str, list[tuple[str, str]]] = {}
    qrels: dict[str, dict[str, int]] = {}
    unresolved = []
    for q in questions:
        rel = qrels.setdefault(q.id, {})
        for g in q.gold:
            anchor = normalize_anchor(g.anchor)
            found = False
            for d in by_alias.get(g.doc, []):
                if d.id not in norm_cache:
                    norm_cache[d.id] = [(p.id, normalize_anchor(p.text)) for p in d.provisions]
                for pid, text in norm_cache[d.id]:
                    if anchor in text:
                        rel[pid] = 1
                        found = True
            if not found:
                unresolved.append((q.id, g.doc, g.anchor))
    return Resolution(qrels, tuple(unresolved))


def load_queries(path: Path | str, problems: list[str] | None = None) -> list[Question]:
    """Read a queries JSONL file (``index.request.read_query_file``: ours ``id``/``query`` or BEIR ``_id``/``text``).

    Bad lines are skipped with ``file:line`` and the reason: added to ``problems``, or printed to stderr."""
    import sys

    from index.request import read_query_file

    skipped: list[str] = []
    questions = [Question(qid, text, str(rec.get("kind", "query")), str(rec.get("split", "all")))
                 for qid, text, rec in read_query_file(path, skipped)]
    if problems is not None:
        problems.extend(skipped)
    else:
        for problem in skipped:
            print(f"跳过 skipped: {problem}", file=sys.stderr)
    return questions


def load_qrels(path: Path | str) -> dict[str, dict[str, int]]:
    """Read a qrels TSV (``query-id corpus-id score``, header optional) into {query: {item: grade}}."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                raise ValueError(f"{path}:{n}: expected 'query-id<TAB>corpus-id<TAB>score', got {row!r}")
            try:
                grade = int(float(row[2]))
            except ValueError:
                if n == 1:
                    continue  # header
                raise ValueError(f"{path}:{n}: score {row[2]!r} is not a number") from None
            qrels.setdefault(row[0].strip(), {})[row[1].strip()] = grade
    return qrels


def qrels_level(qrels: Mapping[str, Mapping[str, int]]) -> str:
    """'provision' when the judged ids look like provision ids (contain '#'), else 'doc'."""
    ids = [d for rel in qrels.values() for d in rel]
    return "provision" if ids and sum("#" in d for d in ids) * 2 >= len(ids) else "doc"
