"""End-to-end ingest: files -> documents -> index, keeping indexed work when a file fails to read."""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from index import config
from index.types import Document


@dataclass(frozen=True)
class IngestReport:
    """What an ingest did, for the CLI summary and the exit status."""

    documents: int
    provisions: int
    chunks: int
    embedded: int  # chunks that had to be embedded (the rest reused their vectors)
    kept_previous: tuple[str, ...]  # doc ids whose file failed but whose indexed version was kept
    errors: tuple  # IngestError records
    files: int
    megabytes: float
    seconds: float
    unchanged: bool = False  # the source files are byte-identical to the last clean ingest: nothing was read
    embedded_on: str | None = None  # where the new chunks were embedded when not here: "Ray cluster at …, 2 actors …"

    def summary(self) -> str:
        """One human-readable paragraph."""
        if self.unchanged:
            return (f"索引未变: {self.files} 个文件与上次相同; index unchanged: {self.files} files ({self.megabytes:.1f} MB) "
                    f"are byte-identical to the last ingest — {self.documents} documents / {self.provisions} provisions, "
                    f"checked in {self.seconds:.1f}s\nno errors")
        lines = [
            f"已索引 {self.documents} 份文件, {self.provisions} 条条款, {self.chunks} 个片段 "
            f"(新嵌入 {self.embedded}); indexed {self.documents} documents / {self.provisions} provisions "
            f"from {self.files} files ({self.megabytes:.1f} MB) in {self.seconds:.1f}s",
        ]
        if self.embedded_on:
            lines.append(f"embedded on {self.embedded_on}")
        if self.kept_previous:
            lines.append("kept the previously indexed version of: " + ", ".join(self.kept_previous))
        # an error is a file that could not be read or one JSON Lines record skipped (the rest of that file is indexed)
        lines.append(f"跳过 {len(self.errors)} 项（文件或记录，原因见上）; {len(self.errors)} skipped (files or records, "
                     "reasons above)" if self.errors else "no errors")
        return "\n".join(lines)


def _previous_documents(index_dir: Path) -> dict[str, Document]:
    """The indexed documents, when documents.jsonl is the one the manifest records (sha256): an altered file never
    gives its text to the new index."""
    from index.store import DOCUMENTS, read_documents, read_manifest
    from index.store.manifest import altered_file

    try:
        manifest = read_manifest(index_dir)
        if DOCUMENTS not in manifest.file_sha256 or altered_file(
                index_dir, {DOCUMENTS: manifest.files[DOCUMENTS]}, manifest.file_sha256):
            return {}
        return read_documents(index_dir)
    except Exception:  # no index yet, or an unreadable one: nothing to keep
        return {}


def _discard_if_damaged(index_dir: Path, embedder) -> None:
    """Make the next build a full rebuild when the index on disk does not load (altered bytes or manifest, another
    model): ``build_index`` trusts an index whose corpus, settings and file sizes match, so an error message's fix
    ("rebuild it with `policyqa ingest …`") would otherwise leave the damage in place."""
    from index.store import (
        MANIFEST, IndexAlteredError, IndexCorruptError, IndexMismatchError, IndexNotFoundError, index_lock, load_index)
    from index.store.errors import write_error

    if not (index_dir / MANIFEST).is_file():
        return
    try:
        load_index(index_dir, embedder)
        return
    except (IndexNotFoundError, IndexAlteredError):
        return  # altered files: build_index checks every digest itself and reuses only the intact vectors
    except (IndexCorruptError, IndexMismatchError):
        pass
    with index_lock(index_dir):  # the manifest goes; the build that follows writes a complete new index
        try:
            (index_dir / MANIFEST).unlink(missing_ok=True)
        except OSError as exc:
            raise write_error(exc, index_dir) from None


def _recorded_backend(index_dir: Path) -> str | None:
    """The backend URI an existing index records (an ingest into a Milvus index's folder stays on Milvus)."""
    from index.store import IndexStoreError, read_manifest

    try:
        backend = read_manifest(index_dir).build.backend
    except IndexStoreError:
        return None
    return str(backend["uri"]) if backend else None


# The modules that turn files into documents: a change to any of them re-reads the files.
_READERS = ("types", "read", "jsonl", "office", "clean", "parse", "meta", "dedup", "ingest")
_READER_LIBS = ("charset-normalizer", "pypdf", "python-docx", "selectolax", "opencc", "datasketch")


def inputs_fingerprint(files: list[tuple[Path, Path]], max_bytes: int) -> str | None:
    """sha256 over the files to ingest (ingest root, path, bytes) and the code and library versions that read them;
    None when a file cannot be read whole (it will be reported by the normal path)."""
    from index.store.parts import dist_version

    h = hashlib.sha256()
    here = Path(__file__).parent
    for name in _READERS:
        h.update((here / f"{name}.py").read_bytes())
    h.update(repr([(n, dist_version(n)) for n in _READER_LIBS] + [max_bytes]).encode())
    try:
        for path, root in files:
            if path.stat().st_size > max_bytes:
                return None
            # names as the file system's bytes: a name that is not UTF-8 (GBK bytes from an old zip or share) has
            # surrogates in its str, which str.encode() refuses
            h.update(b"\0" + os.fsencode(root) + b"\0" + os.fsencode(path) + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    except OSError:
        return None
    return h.hexdigest()


def ingest_paths(
    paths: list[Path],
    index_dir: Path,
    *,
    progress: bool = True,
    embed_context: bool = True,
    embedder=None,
    backend: str | None = None,
    ray=None,
) -> IngestReport:
    """Read ``paths`` and rebuild ``index_dir`` atomically so it holds exactly these documents.

    A file that fails to read but whose document is already in the index keeps its indexed version
    (a transient or corrupted copy never deletes indexed work); its error is still reported.
    ``backend``: ``milvus://host:port/collection`` to keep vectors and BM25 in Milvus (``config.index_target``);
    None keeps the backend the index already records (embedded for a new one).  A Milvus index is rebuilt on every
    ingest (no unchanged check), re-using the vectors of unchanged chunks (``index.store.milvus_reuse``).
    ``ray``: an ``index.store.ray_embed.RayPlan``; the chunks that need embedding are embedded on that cluster
    (reached before anything is read, so a wrong address fails at once).
    """
    from index.embed import load_embedder
    from index.ingest import DEFAULT_MAX_BYTES, load_documents, scan_files
    from index.read import display_path
    from index.store import MANIFEST, IndexSettings, build_index, index_lock, unchanged_index
    from index.store.atomic import remove_stale_builds
    from index.store.guard import check_index_target

    t0 = time.perf_counter()
    missing = [display_path(p) for p in paths if not os.path.lexists(p)]  # a symlink loop is reported by the reader
    if missing:
        raise FileNotFoundError("no such file or folder: " + ", ".join(missing) + "; the index is unchanged")
    check_index_target(Path(index_dir))  # before reading anything: a file named by mistake is refused at once
    remove_stale_builds(Path(index_dir))  # what a killed ingest left, whatever path this one takes (not while a
    # live build holds the lock)
    if ray is not None:
        from index.store.ray_embed import connect

        connect(ray.address)
    backend = backend or _recorded_backend(Path(index_dir))
    embedder = embedder or load_embedder(config.model_spec())
    settings = IndexSettings.of(embed_context=embed_context)
    files, scan_errors = scan_files([Path(p) for p in paths], index_dir=Path(index_dir))
    inputs = None if scan_errors else inputs_fingerprint(files, DEFAULT_MAX_BYTES)
    same = None
    if inputs and backend is None and (Path(index_dir) / MANIFEST).is_file():
        with index_lock(Path(index_dir)):  # a build in progress may be about to replace it: wait for it first
            same = unchanged_index(Path(index_dir), inputs, embedder, settings)
    if same:
        counts = same.build.counts
        return IngestReport(documents=counts["documents"], provisions=counts["provisions"], chunks=counts["chunks"],
                            embedded=0, kept_previous=(), errors=(), files=len(files),
                            megabytes=sum(p.stat().st_size for p, _ in files) / 1e6,
                            seconds=time.perf_counter() - t0, unchanged=True)
    result = load_documents([Path(p) for p in paths], progress=progress, scanned=(files, scan_errors))
    documents = list(result.documents)
    have = {d.id for d in documents} | {s.path for d in documents for s in d.sources}
    kept = []
    if result.errors:
        previous = _previous_documents(index_dir)
        failed = {Path(e.path).as_posix() for e in result.errors}
        for doc in previous.values():
            if doc.id in have:
                continue
            if any(any(s.path == f or f.endswith("/" + s.path) for f in failed) for s in doc.sources):
                documents.append(doc)
                kept.append(doc.id)
    if not documents:
        why = "; ".join(f"{e.path}: {e.reason}" for e in result.errors[:3])
        more = f" (and {len(result.errors) - 3} more)" if len(result.errors) > 3 else ""
        raise ValueError("no document could be read from " + ", ".join(map(display_path, paths))
                         + (f" — {why}{more}" if why else "") + "; the index is unchanged")
    if backend is None:
        _discard_if_damaged(Path(index_dir), embedder)
    report = build_index(documents, index_dir, embedder, settings, progress=progress,
                         inputs_sha256=None if result.errors else inputs, backend=backend, ray=ray)
    counts = report.counts
    return IngestReport(
        documents=len(documents),
        provisions=sum(len(d.provisions) for d in documents),
        chunks=int(counts.get("chunks", 0)),
        embedded=int(counts.get("embedded", 0)),
        kept_previous=tuple(kept),
        errors=tuple(result.errors),
        files=result.files,
        megabytes=result.bytes / 1e6,
        seconds=time.perf_counter() - t0,
        embedded_on=_embedded_on(report.manifest.build.embedded_by) if report.encoded else None,
    )


def _embedded_on(record) -> str | None:
    """The summary's words for the manifest's ``embedded_by`` (None: embedded in this process)."""
    if not record or record.get("kind") != "ray":
        return None
    return (f"the Ray cluster at {record.get('address')}: {record.get('batches')} batches, {record.get('actors')} "
            f"actors on {record.get('nodes_used')} of its {record.get('nodes')} nodes")
