"""Ingest orchestration: paths -> files -> RawDocuments -> Documents, duplicates merged, every problem reported."""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from index.dedup import merge_duplicates
from index.parse import parse_document
from index.read import DEFAULT_MAX_BYTES, FORMATS, ReadError, display_path, read_path
from index.types import Document

#: Provisions one document may have.  The largest real ones have ~1,400 (policies.jsonl; 民法典 has 1,260 articles);
#: a file that parses into more is generated or damaged, and would cost minutes and gigabytes to embed.
MAX_PROVISIONS = 20_000

# Files a directory walk passes over on purpose: notes about the corpus, not documents in it.
_NOT_DOCUMENTS = {"readme", "sources", "license", "licence", "changelog", "法律法规模版"}


@dataclass(frozen=True)
class IngestError:
    """One file (or JSONL line) that could not be ingested, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class IngestResult:
    """Documents read from the given paths, plus what went wrong and how long it took."""

    documents: tuple[Document, ...]
    errors: tuple[IngestError, ...]
    files: int
    bytes: int
    seconds: float


def _skipped_by_name(path: Path) -> bool:
    return path.name.startswith((".", "_", "~$")) or path.stem.lower() in _NOT_DOCUMENTS


def _outside(path: Path, real_root: str) -> str | None:
    """Where ``path`` really leads when that is outside the folder being ingested (through a symlink, a chain of
    them, or a relative ``../..`` target), else None."""
    real = os.path.realpath(path)
    return None if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep) else real


def scan_files(paths: list[Path], index_dir: Path | None = None) -> tuple[list[tuple[Path, Path]], list[IngestError]]:
    """(file, ingest root) pairs to read, and the files of unsupported type found while walking directories.

    A path given explicitly is always returned (so a wrong one is reported by the reader); inside a directory,
    hidden files, ``_index.md``-style files and README/SOURCES notes are passed over, and so is every index folder
    (``index_dir``, its lock and build folders, any other index found there): an index is never read as input.
    A symlink found in a directory that leads outside it (e.g. ``passwd.txt -> /etc/passwd``) is reported and not
    read: ingesting a folder reads that folder only.
    """
    from index.store.guard import is_never_read, never_read

    found: list[tuple[Path, Path]] = []
    errors: list[IngestError] = []
    excluded = never_read(index_dir, [Path(p) for p in paths])
    for given in paths:
        given = Path(given)
        if is_never_read(given, excluded, given=True):
            errors.append(IngestError(display_path(given), "is an index folder (or inside one), never read as input"))
            continue
        if given.is_dir():
            real_root = os.path.realpath(given)
            # excluded folders as paths relative to this root: a walk entry is matched by its parts, no syscalls
            skip = {e.relative_to(real_root).parts for e in excluded if Path(real_root) in e.parents}
            try:
                candidates = sorted(p for p in given.rglob("*") if p.is_file() or p.is_symlink())
            except OSError as exc:  # an unreadable sub-directory
                errors.append(IngestError(display_path(exc.filename or given),
                                          f"cannot list directory: {exc.strerror or exc}"))
                continue
            for path in candidates:
                rel_parts = path.relative_to(given).parts
                if any(part.startswith(".") for part in rel_parts) or _skipped_by_name(path):
                    continue
                if any(rel_parts[:i] in skip for i in range(1, len(rel_parts) + 1)):
                    continue
                # rglob does not descend into symlinked folders: only a symlink can lead out of the root
                link = path.is_symlink()
                target = _outside(path, real_root) if link else None
                if link and is_never_read(Path(os.path.realpath(path)), excluded):
                    continue
                if link and path.is_dir():
                    errors.append(IngestError(display_path(path), "symlink to a directory (not followed, to avoid "
                                                                  "loops)"))
                elif target is not None:
                    errors.append(IngestError(display_path(path), f"symlink to {display_path(target)}, outside the "
                                                                  f"folder being ingested; not read (copy the file "
                                                                  "into the folder to index it)"))
                elif path.suffix.lower() in FORMATS:
                    found.append((path, given))
                else:
                    kind = path.suffix or "(none)"
                    errors.append(IngestError(display_path(path), f"unsupported file type {kind!r} (skipped)"))
        else:
            found.append((given, given.parent))
    return found, errors


def iter_files(paths: list[Path]) -> list[Path]:
    """Files to ingest under ``paths`` (directories walked recursively, sorted, supported extensions only)."""
    return [path for path, _ in scan_files(paths)[0]]


def load_documents(paths: list[Path], progress: bool = True, max_bytes: int = DEFAULT_MAX_BYTES,
                   scanned: tuple[list[tuple[Path, Path]], list[IngestError]] | None = None) -> IngestResult:
    """Read, clean, parse and de-duplicate every document under ``paths``; never raises for a bad file.

    ``scanned``: the result of ``scan_files(paths)`` when the caller already has it (the directory walk is not repeated).
    """
    t0 = time.perf_counter()
    files, errors = scan_files(paths) if scanned is None else (list(scanned[0]), list(scanned[1]))
    documents: list[Document] = []
    seen_ids: dict[str, str] = {}
    contractual: set[str] = set()  # BEIR record ids are a benchmark's keys: such records are never merged
    total_bytes = 0
    for path, root in tqdm(files, desc="ingest", unit="file", disable=not progress, file=sys.stderr):
        problems: list[ReadError] = []
        try:
            raws = read_path(path, root, max_bytes=max_bytes, problems=problems)
            total_bytes += path.stat().st_size
        except ReadError as exc:
            errors.append(IngestError(exc.path, exc.reason))
            continue
        except Exception as exc:  # a reader bug must not stop the ingest of the other files
            errors.append(IngestError(display_path(path), f"unexpected error while reading: {type(exc).__name__}: "
                                                          f"{exc}"))
            continue
        finally:
            errors.extend(IngestError(p.path, p.reason) for p in problems)
        for raw in raws:
            if raw.doc_id in seen_ids:
                errors.append(IngestError(raw.source.path, f"duplicate document id {raw.doc_id!r} "
                                          f"(already read from {seen_ids[raw.doc_id]}); skipped"))
                continue
            try:
                doc = parse_document(raw)
            except Exception as exc:
                errors.append(IngestError(raw.source.path, f"could not parse: {type(exc).__name__}: {exc}"))
                continue
            if len(doc.provisions) > MAX_PROVISIONS:
                errors.append(IngestError(raw.source.path, f"too many provisions: {len(doc.provisions):,} > limit "
                                          f"{MAX_PROVISIONS:,} per document (generated or damaged text?); skipped"))
                continue
            documents.append(doc)
            seen_ids[raw.doc_id] = raw.source.path
            if raw.meta_hint.get("layout") == "beir":
                contractual.add(raw.doc_id)
    documents = merge_duplicates(documents, keep=frozenset(contractual))
    return IngestResult(tuple(documents), tuple(errors), len(files), total_bytes, time.perf_counter() - t0)
