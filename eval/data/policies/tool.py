"""Tooling for the team-written relevance questions over ../shared/corpora/policies.jsonl (never the default corpus).

  python eval/data/policies/tool.py dump OUT_DIR      one Markdown file per document: its provisions with ids,
                                                      for the people writing questions (batches by document order)
  python eval/data/policies/tool.py check FILE...     every gold anchor must occur verbatim (after NFKC and
                                                      whitespace removal) in one provision of its document
  python eval/data/policies/tool.py resolve FILE...   write provision_id into each gold item (anchor stays the truth)
  python eval/data/policies/tool.py english OUT TSV... English versions of written questions: each TSV line is
                                                      ``id<TAB>English question``; OUT gets one question per line
                                                      with the original's gold and split, kind ``english``, id
                                                      ``<id>-en`` and ``from`` = the original's id

Question files: JSON Lines ``{"id", "query", "kind", "split", "gold": [{"doc", "anchor"}]}``; ``gold: []`` for a
question the documents do not answer (kind ``out_of_corpus``).  The split is by document (``split_of``), so no
document's questions are in two splits.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

POLICIES = ROOT.parent / "shared" / "corpora" / "policies.jsonl"


def split_of(doc_id: str) -> str:
    """train (70 %), dev (15 %) or test (15 %), by a hash of the document id: stable, and one split per document."""
    h = int(hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if h < 70 else "dev" if h < 85 else "test"


def documents(path: Path = POLICIES):
    """The parsed policy documents, in file order."""
    from index.ingest import load_documents

    return load_documents([path], progress=False).documents


def dump(out: Path) -> None:
    """Write one Markdown file per document with its provisions (id, heading path, text)."""
    out.mkdir(parents=True, exist_ok=True)
    for n, d in enumerate(documents()):
        lines = [f"# {d.title}", f"doc: {d.id}", f"split: {split_of(d.id)}", f"issuer: {d.issuer}  date: {d.date}",
                 f"provisions: {len(d.provisions)}", ""]
        for p in d.provisions:
            lines.append(f"## [{p.id}] {' › '.join(p.path)}")
            lines.append(p.text)
            lines.append("")
        (out / f"{n:03d}.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {n + 1} documents to {out}")


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def check(files: list[Path], write: bool = False) -> int:
    """Report every anchor that resolves to no provision; with ``write`` fill provision ids. Exit status 1 on problems."""
    from eval.questions import normalize_anchor

    docs = {d.id: d for d in documents()}
    norm = {d: [(p.id, normalize_anchor(p.text)) for p in doc.provisions] for d, doc in docs.items()}
    bad = 0
    ids: set[str] = set()
    for f in files:
        rows = _rows(f)
        for r in rows:
            if r["id"] in ids:
                print(f"{f}: duplicate id {r['id']}"); bad += 1
            ids.add(r["id"])
            for g in r.get("gold", []):
                if g["doc"] not in norm:
                    print(f"{f}: {r['id']}: unknown doc {g['doc']}"); bad += 1; continue
                a = normalize_anchor(g["anchor"])
                hit = [pid for pid, t in norm[g["doc"]] if a and a in t]
                if not hit:
                    print(f"{f}: {r['id']}: anchor not found: {g['anchor']!r}"); bad += 1
                elif write:
                    g["provision_id"] = hit[0]
            want = {split_of(g["doc"]) for g in r.get("gold", [])}
            if len(want) == 1 and r.get("split") != next(iter(want)):
                print(f"{f}: {r['id']}: split {r.get('split')!r}, its document is in {next(iter(want))!r}"); bad += 1
        if write:
            f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(ids)} questions, {bad} problems")
    return 1 if bad else 0


def english(out: Path, tsvs: list[Path]) -> int:
    """Write ``out`` from translators' TSV files (see the module docstring); an unknown id or a line without a tab
    stops it (exit status 1) before anything is written."""
    here = Path(__file__).parent
    originals = {r["id"]: r for f in sorted(here.glob("batch_*.jsonl")) if f.resolve() != out.resolve()
                 for r in _rows(f)}
    rows, bad = [], 0
    for tsv in tsvs:
        for n, line in enumerate(tsv.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            qid, sep, text = line.partition("\t")
            if not sep or not text.strip() or qid not in originals:
                print(f"{tsv}:{n}: expected a known id, a tab and an English question"); bad += 1; continue
            o = originals[qid]
            rows.append({"id": f"{qid}-en", "query": text.strip(), "kind": "english", "split": o["split"],
                         "gold": o.get("gold", []), "from": qid})
    if bad:
        return 1
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} English questions to {out}")
    return 0


if __name__ == "__main__":
    cmd, *args = sys.argv[1:] or ["help"]
    if cmd == "dump":
        dump(Path(args[0]))
    elif cmd == "english":
        sys.exit(english(Path(args[0]), [Path(a) for a in args[1:]]))
    elif cmd in ("check", "resolve"):
        sys.exit(check([Path(a) for a in args], write=cmd == "resolve"))
    else:
        print(__doc__)
