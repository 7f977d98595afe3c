"""👍/👎 from the page, appended to a local JSON Lines file that `policyqa eval feedback` turns into labelled
questions.  A line holds the question, the filters, the vote and the provisions it was about — no IP address,
no session, no user name (README: Feedback)."""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from app.cite import hit_citation
from index import config
from index.types import Hit

MAX_QUERY = 2000  # characters of the question kept in a line


def default_path() -> Path:
    """$POLICYQA_FEEDBACK, else <data>/feedback/feedback.jsonl."""
    env = os.environ.get("POLICYQA_FEEDBACK")
    return Path(env).expanduser() if env else config.data_dir() / "feedback" / "feedback.jsonl"


class FeedbackLog:
    """Appends one JSON object per vote (one write per line, under a lock: lines never interleave)."""

    def __init__(self, path: Path | None = None):
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()

    def add(self, query: str, filters: Mapping, target: str, vote: str, hits: Sequence[Hit],
            rank: int | None = None) -> dict:
        """Record a vote on the answer (``target`` "answer": its strong hits) or on one card (``rank``)."""
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "query": query[:MAX_QUERY],
                  "filters": {k: v for k, v in filters.items() if v not in (None, "")},
                  "target": target, "rank": rank, "vote": vote,
                  "hits": [{"doc_id": h.doc_id, "provision_id": h.provision_id, "citation": hit_citation(h),
                            "relevance": h.relevance} for h in hits]}
        path = self.path or default_path()
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as out:
                out.write(line)
        return record


def read_feedback(path: Path) -> list[dict]:
    """The records of a feedback file; lines that are not JSON objects are skipped."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("query"), str):
            out.append(rec)
    return out


def to_labelled(records: Sequence[Mapping]) -> tuple[list[dict], dict[str, dict[str, int]]]:
    """Questions (``{"id", "query"}``) and qrels (question id -> provision id -> 1 relevant / 0 not) from votes, in
    the format `policyqa eval --queries --qrels` reads.  A 👍 on a card marks it relevant, a 👎 not; a vote on the
    whole answer applies to each provision it quoted.  The last vote on a (question, provision) wins."""
    ids: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for rec in records:
        query = rec["query"].strip()
        if not query or rec.get("vote") not in ("up", "down"):
            continue
        qid = ids.setdefault(query, f"fb{len(ids) + 1}")
        for hit in rec.get("hits") or ():
            if isinstance(hit, Mapping) and hit.get("provision_id"):
                qrels.setdefault(qid, {})[hit["provision_id"]] = 1 if rec["vote"] == "up" else 0
    queries = [{"id": qid, "query": q} for q, qid in ids.items() if qid in qrels]
    return queries, qrels


def write_labelled(log: Path, out: Path) -> tuple[int, int]:
    """Write ``to_labelled(read_feedback(log))`` as ``out/queries.jsonl`` and ``out/qrels.tsv``; (questions, judgements).
    A missing log is a ValueError naming it."""
    if not Path(log).is_file():
        raise ValueError(f"没有反馈记录 / no feedback log at {log}")
    queries, qrels = to_labelled(read_feedback(log))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "queries.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in queries),
                                       encoding="utf-8")
    rows = ["query-id\tcorpus-id\tscore"] + [f"{qid}\t{pid}\t{grade}" for qid, rel in qrels.items()
                                              for pid, grade in rel.items()]
    (out / "qrels.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return len(queries), sum(len(r) for r in qrels.values())
