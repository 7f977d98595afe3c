"""Helper for writing the team's law questions (eval/data/laws/batch_*.jsonl) over statute articles.

    python3 eval/data/laws/tool.py laws                      # every law in the article collection, with counts
    python3 eval/data/laws/tool.py list 中华人民共和国民法典 [START [END]]   # its articles (id, title, text), in order
    python3 eval/data/laws/tool.py check eval/data/laws/batch_1.jsonl       # validate a batch file

The articles are those of ../shared/bench/stard/corpus.jsonl (statutes and judicial interpretations; the same laws
as ../shared/corpora/lawrefbook).  Only the corpus is read: the benchmark's questions and qrels are never opened here.
"""
from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "bench" / "stard" / "corpus.jsonl"
LAW = re.compile(r"第[^第]*条(之[一二三四五六七八九十]+)?$")


def articles() -> list[dict]:
    with open(CORPUS, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def law_of(title: str) -> str:
    return LAW.sub("", title)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    docs = articles()
    if cmd == "laws":
        for law, n in Counter(law_of(d["title"]) for d in docs).most_common():
            print(n, law)
        return 0
    if cmd == "list":
        law = rest[0]
        start = int(rest[1]) if len(rest) > 1 else 0
        end = int(rest[2]) if len(rest) > 2 else 10 ** 9
        names = {law, "中华人民共和国" + law, law.removeprefix("中华人民共和国")}
        mine = [d for d in docs if law_of(d["title"]) in names]  # 民法典 is split over both spellings
        for i, d in enumerate(mine[start:end], start):
            print(f"[{i}] {d['_id']}\t{d['title']}\t{d['text']}")
        print(f"# {len(mine)} articles of {law}", file=sys.stderr)
        return 0
    if cmd == "check":
        ids = {d["_id"] for d in docs}
        bad, n, seen = 0, 0, set()
        for ln, line in enumerate(open(rest[0], encoding="utf-8"), 1):
            if not line.strip():
                continue
            n += 1
            try:
                q = json.loads(line)
                assert set(q) >= {"id", "query", "kind", "gold"}, "fields id, query, kind, gold"
                assert q["id"] not in seen, f"duplicate id {q['id']}"
                seen.add(q["id"])
                assert q["kind"] in {"colloquial", "scenario", "formal", "keyword", "long"}, f"kind {q['kind']}"
                assert 4 <= len(q["query"]) <= 300, "query length"
                assert q["gold"] and all(g in ids for g in q["gold"]), f"unknown gold id in {q['gold']}"
            except Exception as e:  # noqa: BLE001 - report every bad line
                bad += 1
                print(f"line {ln}: {e}")
        print(f"{n} questions, {bad} bad")
        return 1 if bad else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
