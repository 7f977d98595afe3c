"""What `policyqa eval` and `policyqa eval beir` run (app/cli.py parses the options and calls these)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from eval.beir import ensure_beir_index, load_beir
from eval.questions import DEFAULT_QUESTIONS, load_qrels, load_queries, load_questions
from eval.report import write_report
from eval.run import MODES, build_variant_index, calibrate, evaluate, run_ablations


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "-", text).strip("-")[:60] or "model"


def _has_gold(path: Path) -> bool:
    """True for our own questions JSONL (records carry ``gold``), False for BEIR-style queries."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                try:
                    return "gold" in json.loads(line)
                except (ValueError, RecursionError, TypeError):
                    return False  # a bad first line: read as queries, which reports it with file:line
    return False


def _print_summary(result: dict, paths: tuple[Path, Path]) -> None:
    runs = result.get("runs") or {result.get("name", "run"): result}
    for name, r in runs.items():
        for split, s in r["splits"].items():
            m = s["overall"]
            line = " ".join(f"{k}={m[k]:.3f}" for k in ("recall@5", "recall@10", "mrr@10", "ndcg@10") if k in m)
            ooc = s["abstention"]["ooc_abstain_rate"]
            print(f"{name:>20} {split:>5} n={s['n']:<4} {line}" + (f" ooc_abstain={ooc:.2f}" if ooc is not None else "")
                  + f" p95={s['latency_ms']['p95']:.0f}ms")
    print(f"report: {paths[1]}  ({paths[0].name})")


def no_context_searcher(searcher, index_dir: Path):
    """A searcher over a sibling index built with ``embed_context=False`` (built, or refreshed, on demand)."""
    from index.search import Searcher

    other = Path(index_dir).with_name(Path(index_dir).name + "-no-context")
    build_variant_index(searcher.documents, other, searcher.embedder, embed_context=False)
    return Searcher.load(other, searcher.embedder)


def evaluate_questions(searcher, questions, *, judged=None, k: int = 10, ablations: bool = False,
                       no_context=None, out: Path = Path("eval/reports"), name: str = "eval") -> dict:
    """Calibrate ``min_score`` on dev (own questions only), evaluate (or run all ablations), write and print the report."""
    cal = None
    if judged is None and any(q.split == "dev" for q in questions):
        cal = calibrate(searcher, questions, split="dev")  # tuned on dev only; reported, applied in its own run
    if ablations:
        result = run_ablations(searcher, questions, k, qrels=judged, no_context_searcher=no_context)
        if cal is not None and cal.threshold is not None and searcher.min_score is None:
            tuned = searcher.with_settings(min_score=cal.threshold)
            result["runs"]["hybrid+min_score"] = evaluate(tuned, questions, k, "hybrid", qrels=judged,
                                                          name="hybrid+min_score")
    else:
        result = evaluate(searcher, questions, k, "hybrid", qrels=judged)
    if cal is not None:
        result["calibration"] = cal.to_dict()
    result["name"] = name
    paths = write_report(result, out, name)
    _print_summary(result, paths)
    return result


def eval_command(queries: Path | None, qrels: Path | None, index_dir: Path, k: int = 10, ablations: bool = False,
                 out: Path = Path("eval/reports"), name: str | None = None) -> dict:
    """Evaluate the index at ``index_dir`` on the bundled questions (dev and test) or on a queries/qrels pair."""
    from index.search import Searcher

    searcher = Searcher.load(index_dir)
    judged = None
    if queries is None:
        questions, source = load_questions(DEFAULT_QUESTIONS), "default"
    elif qrels is None and _has_gold(queries):
        questions, source = load_questions(queries), Path(queries).stem
    elif qrels is None:
        raise ValueError(f"{queries}: BEIR-style queries need --qrels (a TSV: query-id, corpus-id, score)")
    else:
        questions, judged, source = load_queries(queries), load_qrels(qrels), Path(queries).stem
    model = _slug(getattr(searcher.embedder, "name", "model"))
    return evaluate_questions(
        searcher, questions, judged=judged, k=k, ablations=ablations, out=out,
        no_context=no_context_searcher(searcher, index_dir) if ablations else None,
        name=name or f"{source}{'-ablations' if ablations else ''}-{model}")


def eval_beir_command(directory: Path, split: str = "test", k: int = 10, index_dir: Path | None = None,
                      limit: int | None = None, mode: str = "hybrid", out: Path = Path("eval/reports"),
                      embedder=None, adapter: Path | None = None) -> dict:
    """Evaluate on a BEIR folder: build (or reuse, keyed by the corpus hash) its index, then run ``mode`` or all modes.

    ``adapter``: a query adapter to attach to that index first (the explicit tuning step, as ``policyqa tune``); the
    report then also has the ``no-adapter`` rows (``mode all``).  Without it the index is searched as built."""
    from index.embed import load_embedder
    from index.search import Searcher

    if mode not in (*MODES, "all"):
        raise ValueError(f"mode must be one of {', '.join(MODES)} or all, got {mode!r}")
    data = load_beir(directory, split=split, limit=limit, halves=True)  # "tune" / "heldout" rows (eval/beir.py)
    embedder = embedder or load_embedder()
    idx = ensure_beir_index(data.corpus, embedder, index_dir)
    if adapter is not None:
        from index.store import attach_adapter

        attach_adapter(idx, Path(adapter))
    searcher = Searcher.load(idx, embedder)
    if mode == "all":
        result = run_ablations(searcher, data.questions, k, qrels=data.qrels)
    else:
        result = evaluate(searcher, data.questions, k, mode, qrels=data.qrels)
    tuned = "-tuned" if searcher.manifest.query.adapter else ""
    result["name"] = (f"beir-{_slug(Path(directory).name)}-{split}{f'-{limit}' if limit else ''}-{mode}{tuned}-"
                      f"{_slug(embedder.name)}")
    result["benchmark"] = {"directory": str(directory), "split": split, "limit": limit, "questions": len(data.questions)}
    paths = write_report(result, out, result["name"])
    _print_summary(result, paths)
    return result


def _embedder(kind: str):
    """The configured model, or (``fake``) the hashed n-gram embedder of the tests, for offline BM25-only runs."""
    if kind == "fake":
        from index.fake import HashEmbedder

        return HashEmbedder()
    from index.embed import load_embedder

    return load_embedder()


def main(argv: list[str] | None = None) -> int:
    """`python -m eval.cli [beir DIR]`: the full ablation report on the default corpus, or a BEIR benchmark run."""
    import argparse

    from index import config
    from index.ingest import load_documents
    from index.search import Searcher

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("beir", nargs="*", help="'beir DIR' to evaluate a BEIR folder instead of the default questions")
    ap.add_argument("--embedder", choices=("default", "fake"), default="default",
                    help="default: the configured model; fake: the tests' hashed n-grams (offline, instant; dense is noise)")
    ap.add_argument("--index-root", type=Path, default=None, help="where the two indexes go (default <data>/eval)")
    ap.add_argument("--split", default="train", help="BEIR split")
    ap.add_argument("--mode", default="bm25", help="BEIR: hybrid | dense | bm25 | all")
    ap.add_argument("--limit", type=int, default=None, help="BEIR: first N questions only")
    ap.add_argument("--out", type=Path, default=Path("eval/reports"))
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args(argv)
    embedder = _embedder(args.embedder)
    if args.beir:
        if len(args.beir) != 2 or args.beir[0] != "beir":
            ap.error("usage: python -m eval.cli beir DIR [--split train] [--mode bm25]")
        eval_beir_command(Path(args.beir[1]), args.split, args.k, None, args.limit, args.mode, args.out, embedder)
        return 0
    files = sorted(p for p in config.default_corpus_dir().iterdir() if p.is_file() and p.suffix != ".md")
    documents = load_documents(files, progress=False).documents
    root = (args.index_root or config.data_dir() / "eval") / _slug(embedder.name)
    searcher = Searcher.load(build_variant_index(documents, root / "context", embedder), embedder)
    plain = Searcher.load(build_variant_index(documents, root / "no-context", embedder, embed_context=False), embedder)
    evaluate_questions(searcher, load_questions(DEFAULT_QUESTIONS), k=args.k, ablations=True, no_context=plain,
                       out=args.out, name=f"default-ablations-{_slug(embedder.name)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
