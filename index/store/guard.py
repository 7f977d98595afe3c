"""What may be an index folder, and which paths an ingest must never read: the index itself and its lock/build siblings."""
from __future__ import annotations

import os
from pathlib import Path

from index.store.errors import NotAnIndexError
from index.store.layout import ADAPTER, BM25_DIR, CHUNKS, DENSE, DOCUMENTS, MANIFEST, RELEVANCE, VECTORS

#: Every name an index folder of ours holds (plus the manifest's temp file while it is rewritten).
INDEX_NAMES = frozenset({MANIFEST, MANIFEST + ".tmp", DOCUMENTS, CHUNKS, VECTORS, DENSE, BM25_DIR, RELEVANCE,
                         ADAPTER, ADAPTER + ".tmp"})


def check_index_target(index_dir: Path) -> None:
    """Refuse an ``--index`` that exists and is not an index folder: a file, or a folder holding anything but index
    files.  The build swaps the new index in and deletes what was there, so a user's file or folder named by mistake
    would be lost.  A missing or empty folder, or our own index (even one whose manifest was removed), is fine."""
    index_dir = Path(index_dir)
    if not os.path.lexists(index_dir):
        return
    if not index_dir.is_dir():  # a symlink to a folder is followed (data/index -> /mnt/big/index)
        kind = "a symlink that leads to no folder" if index_dir.is_symlink() else "a file"
        raise NotAnIndexError(f"--index {index_dir} 不是索引文件夹 / is {kind}, not an index folder; it is left as "
                              "it is — give --index a new or empty folder (or an existing index)")
    try:
        names = {p.name for p in index_dir.iterdir()}
    except OSError as exc:
        raise NotAnIndexError(f"--index {index_dir}: cannot list it ({exc.strerror or exc}); give --index a "
                              "folder you can read and write") from None
    foreign = sorted(names - INDEX_NAMES)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" (and {len(foreign) - 3} more)" if len(foreign) > 3 else "")
        raise NotAnIndexError(f"--index {index_dir} 不是索引文件夹 / is a folder that is not an index (it holds "
                              f"{shown}); it is left as it is — give --index a new or empty folder (or an existing "
                              "index)")


def looks_like_index(folder: Path) -> bool:
    """A folder that holds one of our indexes (its manifest beside its documents or chunks)."""
    return (folder / MANIFEST).is_file() and ((folder / DOCUMENTS).exists() or (folder / CHUNKS).exists())


def never_read(index_dir: Path | None, roots: list[Path]) -> frozenset[Path]:
    """Real paths an ingest of ``roots`` must not read: the target index folder, its lock file and build folders,
    and every index folder found under the roots (an index kept inside the corpus folder, e.g. ``corpus/ix``)."""
    out: set[Path] = set()
    if index_dir is not None:
        index_dir = Path(index_dir)
        out.update([index_dir, index_dir.with_name(index_dir.name + ".lock"),
                    *index_dir.parent.glob(f".{index_dir.name}.build-*"),
                    *index_dir.parent.glob(f".{index_dir.name}.old-*")])
    for root in roots:
        if Path(root).is_dir():
            for manifest in Path(root).rglob(MANIFEST):
                if looks_like_index(manifest.parent):
                    out.update([manifest.parent, manifest.parent.with_name(manifest.parent.name + ".lock")])
    return frozenset(Path(os.path.realpath(p)) for p in out)


def is_never_read(path: Path, excluded: frozenset[Path], given: bool = False) -> bool:
    """``path`` (its real location) is one of ``excluded`` or inside one of them; a path ``given`` explicitly is
    also refused when any folder above it is an index (``policyqa ingest ix/bm25/stopwords.txt``)."""
    path = Path(path)
    real = Path(os.path.realpath(path.parent)) / path.name  # where the entry is (a symlink's target is not asked)
    if real in excluded or any(parent in excluded for parent in real.parents):
        return True
    return given and any(looks_like_index(parent) for parent in (real, *real.parents))
