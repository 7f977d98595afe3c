"""`policyqa eval …` (the bundled questions, a queries/qrels pair, a BEIR benchmark, run comparison, the page's
votes) and `policyqa tune` (corpus-specific tuning, made explicit)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from app.cli_common import CliError, IndexOpt, _index_dir

eval_app = typer.Typer(help="Evaluate retrieval (default questions, a queries/qrels pair, or a BEIR benchmark).")


# ---------------------------------------------------------------- eval
@eval_app.callback(invoke_without_command=True)
def eval_main(
    ctx: typer.Context,
    queries: Optional[Path] = typer.Option(None, "--queries", help="Queries JSONL (BEIR or {id, query})."),
    qrels: Optional[Path] = typer.Option(None, "--qrels", help="Qrels TSV (query-id, corpus-id, score)."),
    index: Optional[Path] = IndexOpt,
    k: int = typer.Option(10, "--k"),
    ablations: bool = typer.Option(False, "--ablations", help="Also run bm25-only, dense-only and no-context."),
    out: Path = typer.Option(Path("eval/reports"), "--out", help="Report directory."),
) -> None:
    """Evaluate: the bundled questions on the default index, or --queries/--qrels."""
    if ctx.invoked_subcommand is not None:
        return
    from eval.cli import eval_command

    eval_command(queries=queries, qrels=qrels, index_dir=_index_dir(index), k=k, ablations=ablations, out=out)


@eval_app.command("beir")
def eval_beir(
    directory: Path = typer.Argument(..., help="BEIR folder: corpus.jsonl, queries*.jsonl, qrels/*.tsv"),
    split: str = typer.Option("train", "--split", help="qrels/<split>.tsv (STARD ships only train)"),
    k: int = typer.Option(10, "--k"),
    index: Optional[Path] = typer.Option(None, "--index", help="Index to build or reuse for this corpus."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N queries (quick runs)."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid | dense | bm25 | all"),
    out: Path = typer.Option(Path("eval/reports"), "--out"),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="Attach this query adapter to the index first "
                                           "(as `policyqa tune`), e.g. eval/data/stard-query_adapter-….npz"),
) -> None:
    """Evaluate on a BEIR-layout benchmark (builds or reuses an index of its corpus)."""
    from eval.cli import eval_beir_command

    eval_beir_command(directory=directory, split=split, k=k, index_dir=index, limit=limit, mode=mode, out=out,
                      adapter=adapter)


@eval_app.command("compare")
def eval_compare(
    runs: list[Path] = typer.Argument(..., help="TREC run files; the first is the baseline (eval/reports/runs/*.trec)."),
    qrels: Path = typer.Option(..., "--qrels", help="TREC qrels (qid 0 docid rel) or BEIR TSV."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the Markdown table (and .json) here."),
) -> None:
    """Compare runs on the same questions: means, deltas, paired t-test and randomisation p-values (Holm-corrected)."""
    from eval.compare import compare_runs, read_qrels_any, read_trec_run, render_comparison

    if len(runs) < 2:
        raise CliError("需要至少两个运行文件 / give at least two run files (the first is the baseline)")
    names = [p.stem for p in runs]
    if len(set(names)) != len(names):
        names = [str(p) for p in runs]
    result = compare_runs(read_qrels_any(qrels), {n: read_trec_run(p) for n, p in zip(names, runs)})
    table = render_comparison(result)
    typer.echo(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table, encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")


@eval_app.command("feedback")
def eval_feedback(
    log: Optional[Path] = typer.Argument(None, help="The page's feedback log (default: $POLICYQA_FEEDBACK or "
                                         "<data>/feedback/feedback.jsonl)."),
    out: Path = typer.Option(Path("eval/data/feedback"), "--out", help="Folder for queries.jsonl and qrels.tsv."),
) -> None:
    """Turn the page's 有用/没用 votes into labelled questions for `policyqa eval --queries … --qrels …`."""
    from app.feedback import default_path, write_labelled

    queries, judged = write_labelled(log or default_path(), out)
    typer.echo(f"{queries} 个问题、{judged} 条判断 / {queries} questions, {judged} judgements -> {out}/queries.jsonl, "
               f"{out}/qrels.tsv\n  policyqa eval --queries {out}/queries.jsonl --qrels {out}/qrels.tsv")


# ---------------------------------------------------------------- tune
def tune(
    index: Optional[Path] = IndexOpt,
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="A query adapter (.npz from python -m eval.adapter)."),
    queries: Optional[Path] = typer.Option(None, "--queries",
                                           help="Train one here: this collection's questions (JSONL, as policyqa eval)."),
    qrels: Optional[Path] = typer.Option(None, "--qrels", help="… and their judgements (TSV query-id, corpus-id, score)."),
    w_dense: Optional[float] = typer.Option(None, "--w-dense", min=0.0, max=1.0,
                                            help="Fusion weight of dense retrieval with the adapter (default: the index's)."),
    remove: bool = typer.Option(False, "--remove", help="Remove the index's query adapter."),
) -> None:
    """Corpus-specific tuning, made explicit: train a query adapter on this collection's labelled questions
    (--queries/--qrels), or attach one trained before (--adapter), or --remove it; recorded in the index's manifest."""
    from index.store import attach_adapter

    trained = queries is not None or qrels is not None
    if sum((adapter is not None, remove, trained)) != 1 or (trained and (queries is None or qrels is None)):
        raise CliError("需要且只需要其一：--queries 与 --qrels、--adapter 文件或 --remove / give one of: --queries with "
                       "--qrels, --adapter FILE, or --remove")
    if w_dense is not None and not trained:
        raise CliError("--w-dense 只用于 --queries 训练 / --w-dense goes with --queries (an --adapter file carries its own)")
    if trained:
        from eval.tune import TuneError, tune_index
        from index.store import read_manifest

        try:
            meta = tune_index(_index_dir(index), queries, qrels, w_dense=w_dense, log=typer.echo)
        except TuneError as exc:
            typer.echo(f"未调优 / not tuned: {exc}", err=True)
            raise typer.Exit(1) from None
        before, after = meta["early_stopping_mrr10"]
        typer.echo(f"已训练并挂接查询适配器 / query adapter trained and attached: {meta['questions']} 个问题 questions "
                   f"({meta['fit_questions']} fit, the rest for early stopping: dense MRR@10 {before:.3f} -> {after:.3f}), "
                   f"{meta['steps']} steps, {meta['seconds']:.0f} s")
        manifest = read_manifest(_index_dir(index))
    else:
        manifest = attach_adapter(_index_dir(index), adapter)  # None with --remove
    state = manifest.query.adapter or "none"
    typer.echo(f"index {_index_dir(index)}: query adapter {state}"
               + (f", fusion {dict(manifest.query.adapter_fusion)}" if manifest.query.adapter_fusion else ""))
