"""Dev figures through the product path — the searcher as a user runs it, relevance stage included — for a candidate
change, to be put beside the shipped one's in the same run: the team's policies dev split (questions and their
English versions apart) or STARD's tune-half B.

    python -m eval.relevance.devpath INDEX policies|stard [--stage DIR] [--set name=value ...]

``--stage``: judge with a stage folder (``ship.py``'s layout, e.g. ``ship(source, dest_root=…)``) instead of the
index's own; ``--set``: query settings (``Searcher.with_settings``, e.g. ``relevance=false`` for the first stage
alone).  Prints one JSON line: per group, MRR@10 and R@10, false abstain (answerable questions without a
confident hit), out-of-corpus questions abstained, MRR@10 by question kind.  Policies gold is provisions, STARD's is
documents.  Every ship-or-not rule of session 11 was decided on these figures (eval/reports/QUALITY.md).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from eval.metrics import ir_metrics  # noqa: E402
from eval.relevance.question_sets import BATCHES, Item, policy_questions, stard_questions  # noqa: E402


def figures(searcher, items: list[Item], by_doc: bool = False, k: int = 10) -> dict:
    """The product-path figures of ``items``: ``questions`` (the team's questions as written, a few of them English)
    and ``english_versions`` (``-en`` ids: batch_7's English versions of Chinese questions) apart.  MRR@10 and R@10
    are ``eval.metrics.ir_metrics``' (pytrec_eval), as in every other report."""
    groups: dict[str, dict] = {}
    for it in items:
        resp = searcher.query(it.query, k=k)
        g = groups.setdefault("english_versions" if it.qid.endswith("-en") else "questions",
                              {"run": {}, "qrels": {}, "kinds": {}, "abstain": [], "ooc": []})
        if it.gold:
            g["run"][it.qid] = [h.doc_id if by_doc else h.provision_id for h in resp.hits]
            g["qrels"][it.qid] = {x: 1 for x in it.gold}
            g["kinds"].setdefault(it.kind, []).append(it.qid)
            g["abstain"].append(not any(h.confident for h in resp.hits))
        else:
            g["ooc"].append(not resp.found)
    def mean(xs) -> float | None:
        return round(float(np.mean(xs)), 4) if len(xs) else None

    out = {}
    for name, g in sorted(groups.items()):
        per_query = ir_metrics(g["run"], g["qrels"])
        mrr = {kind: mean([per_query[q]["mrr@10"] for q in qids]) for kind, qids in sorted(g["kinds"].items())}
        out[name] = {"answerable": len(per_query), "MRR@10": mean([r["mrr@10"] for r in per_query.values()]),
                     "R@10": mean([r["recall@10"] for r in per_query.values()]),
                     "false_abstain": mean(g["abstain"]), "ooc": len(g["ooc"]), "ooc_abstained": mean(g["ooc"]),
                     "MRR@10_by_kind": mrr}
    return out


def _value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text


def with_stage(loaded, stage_dir: Path, embedder):
    """``loaded`` (a loaded index) judged by the stage at ``stage_dir`` instead of its own; a stage that reads sentence
    features and has no stored sentence vectors (a training output) gets them from the training cache."""
    from dataclasses import replace

    from index.relevance import RelevanceStage

    stage = RelevanceStage.load(Path(stage_dir))
    if stage.needs_sentences and stage.sentences is None:
        from eval.relevance.sentences import LazySentences

        stage.sentences = LazySentences([c.text for c in loaded.chunks], embedder)
    return replace(loaded, relevance=stage)


def main(argv: list[str] | None = None) -> int:
    from index.embed import load_embedder
    from index.search import Searcher
    from index.store import check_embedder, load_index

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path)
    ap.add_argument("questions", choices=("policies", "stard"))
    ap.add_argument("--stage", type=Path, help="a stage folder to judge with instead of the index's own")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a query setting")
    args = ap.parse_args(argv)
    settings = {k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}
    loaded = load_index(args.index)
    embedder = load_embedder(loaded.manifest.build.model.name)
    check_embedder(loaded.manifest, embedder, args.index)
    if args.stage:  # in this process only; the index folder is not touched
        loaded = with_stage(loaded, args.stage, embedder)
    searcher = Searcher(loaded, embedder)
    if settings:
        searcher = searcher.with_settings(**settings)
    if args.questions == "policies":
        items = [i for i in policy_questions(searcher.documents, sorted(BATCHES.glob("batch_*.jsonl")))[0]
                 if i.split == "dev"]
    else:
        items = [i for i in stard_questions() if i.split == "stard-b"]
    t0 = time.time()
    out = figures(searcher, items, by_doc=args.questions == "stard")
    print(json.dumps({"index": str(args.index), "question_set": args.questions, "stage": args.stage and str(args.stage),
                      "settings": settings, "seconds": round(time.time() - t0), **out}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
