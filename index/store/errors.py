"""The index errors: each message says what is wrong and how to fix it."""
from __future__ import annotations

import errno

FIX = "rebuild it with `policyqa ingest …`"


class IndexStoreError(Exception):
    """Base of the index errors."""


class IndexNotFoundError(IndexStoreError):
    """No index at the given directory."""


class IndexMismatchError(IndexStoreError):
    """The index was built by another schema or model than the one in use."""


class IndexCorruptError(IndexStoreError):
    """A file of the index is missing, truncated or unreadable."""


class IndexAlteredError(IndexCorruptError):
    """A file of the index has its recorded size but not its recorded sha256: altered or damaged in place."""


class IndexLockedError(IndexStoreError):
    """Another build holds the index lock."""


class IndexWriteError(IndexStoreError):
    """The index folder cannot be written: read-only file system, full disk, no permission."""


class NotAnIndexError(IndexStoreError):
    """``--index`` names something that exists and is not an index folder (a file, or a folder of other files)."""


class RayClusterError(IndexStoreError):
    """The Ray cluster named for the build cannot be reached, or could not embed the chunks."""


# errno -> (中文, English, the fix)
_WRITE_PROBLEMS = {
    errno.EROFS: ("只读文件系统", "the file system is read-only",
                  "choose a writable folder with --index (or POLICYQA_INDEX)"),
    errno.ENOSPC: ("磁盘已满", "no space left on the disk",
                   "free some space or choose a folder on another disk with --index, then run the ingest again"),
    errno.EDQUOT: ("磁盘配额已满", "disk quota exceeded",
                   "free some space or choose a folder on another disk with --index, then run the ingest again"),
    errno.EACCES: ("没有写入权限", "permission denied",
                   "choose a folder you can write to with --index, or fix its permissions"),
    errno.EPERM: ("没有写入权限", "operation not permitted",
                  "choose a folder you can write to with --index, or fix its permissions"),
}


def write_error(exc: OSError, target) -> IndexWriteError:
    """One bilingual line for an OSError met while writing the index at ``target``, naming the fix; whatever was
    built so far is discarded by the caller, so the previous index is unchanged."""
    cn, en, fix = _WRITE_PROBLEMS.get(exc.errno, ("无法写入", exc.strerror or str(exc),
                                                  "check the folder and the disk, then run the ingest again"))
    code = f"Errno {exc.errno}" if exc.errno else type(exc).__name__
    where = f" ({exc.filename})" if exc.filename else ""
    return IndexWriteError(f"无法写入索引 {target}：{cn} / cannot write the index {target}: {en} [{code}{where}]; "
                           f"{fix}; the previous index is unchanged")
