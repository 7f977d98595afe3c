"""Fill ``provision_id`` in questions.jsonl from the anchors, using the real parser (the anchor stays the source of truth).

Run from the repository root after the parser changes:  python eval/data/resolve_ids.py [--check]
With --check nothing is written; the exit status is 1 when an anchor resolves to nothing or an id is stale.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from eval.questions import DEFAULT_QUESTIONS, Question, load_questions, resolve_gold  # noqa: E402


def resolve_ids(path: Path = DEFAULT_QUESTIONS, corpus: Path | None = None) -> tuple[list[dict], list[str]]:
    """Rows of ``path`` with each gold item's ``provision_id`` set to its first matching provision; and the problems."""
    from index.config import default_corpus_dir
    from index.ingest import load_documents

    files = sorted(p for p in (corpus or default_corpus_dir()).iterdir() if p.is_file() and p.suffix != ".md")
    documents = load_documents(files, progress=False).documents
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_id = {q.id: q for q in load_questions(path)}
    problems = []
    for row in rows:
        q = by_id[str(row["id"])]
        for item, gold in zip(row["gold"], q.gold):
            # resolve one gold item at a time so each gets its own id, in document order
            res = resolve_gold([Question(q.id, q.query, gold=(gold,))], documents)
            ids = sorted(res.qrels[q.id], key=lambda pid: _order(documents, pid))
            if not ids:
                problems.append(f"{q.id}: anchor {gold.anchor!r} matches no provision of {gold.doc}")
            elif item.get("provision_id") not in ids:
                problems.append(f"{q.id}: provision_id {item.get('provision_id')!r} -> {ids[0]!r}")
            item["provision_id"] = ids[0] if ids else None
    return rows, problems


def _order(documents, pid: str) -> tuple[str, int]:
    for d in documents:
        for i, p in enumerate(d.provisions):
            if p.id == pid:
                return d.id, i
    return "", 0


def main() -> int:
    """Command line entry: write the ids (default) or only check them."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report stale or unresolved ids, write nothing")
    ap.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    args = ap.parse_args()
    rows, problems = resolve_ids(args.questions)
    for p in problems:
        print(p)
    unresolved = [p for p in problems if "matches no provision" in p]
    if not args.check:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        args.questions.write_text(text, encoding="utf-8")
        print(f"wrote {args.questions} ({len(rows)} questions, {len(problems)} ids changed or missing)")
    return 1 if unresolved or (args.check and problems) else 0


if __name__ == "__main__":
    raise SystemExit(main())
