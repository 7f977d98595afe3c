"""What the `policyqa` commands share: the --index option, user-facing errors, and loading an index."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from index import config

IndexOpt = typer.Option(None, "--index", help="Index directory, or milvus://host:port/collection (default: $POLICYQA_INDEX or data/index).")


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"错误 / error: {message}", err=True)
    raise typer.Exit(code)


def _index_dir(index: Optional[Path]) -> Path:
    return config.index_target(index)[0]  # milvus://host:port/collection: its local folder


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception classes whose message is meant for the user.  OSError: the machine's answer (a read-only or full
    disk, a missing file) names the path and is the user's to fix; one line, not a traceback."""
    classes: list[type[BaseException]] = [CliError, ValueError, OSError]
    for module, names in (
        ("index.store", ("IndexStoreError",)),
        ("index.read", ("ReadError",)),
        ("index.modelbuild", ("ModelBuildError",)),
        ("index.embed", ("EmbedderError",)),
    ):
        try:
            mod = __import__(module, fromlist=list(names))
        except ImportError:
            continue
        classes += [getattr(mod, n) for n in names if isinstance(getattr(mod, n, None), type)]
    return tuple(classes)


def _read_documents(index: Optional[Path]) -> dict:
    from index.store import read_documents, read_manifest

    read_manifest(_index_dir(index))  # "no index at …; build one with …" rather than a missing file inside it
    return read_documents(_index_dir(index))


def _load_searcher(index: Optional[Path]):
    from index.search import Searcher

    return Searcher.load(_index_dir(index))
