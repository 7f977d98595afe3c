"""Build-folder safety shared by the index and the model folder: one lock per target, and an atomic swap into place."""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from index.store.errors import IndexLockedError, write_error

#: Targets whose lock this process holds right now (``folder_lock``): only a lock holder may clear build folders.
_HELD: set[Path] = set()


def lock_path(target: Path) -> Path:
    """``<target>.lock`` beside the folder it guards."""
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def folder_lock(target: Path, timeout: float = 600.0) -> Iterator[None]:
    """Hold ``<target>.lock`` (filelock: fcntl on POSIX, msvcrt on Windows) so two builds of one folder never run at
    once; wait up to ``timeout`` seconds, then raise IndexLockedError.  Whoever takes the lock first clears the build
    folders a killed build left (``remove_stale_builds``): every path through an ingest, the "unchanged" one too.

    A lock that cannot be created (read-only file system, full disk, no permission) is an IndexWriteError naming
    the fix, not a traceback."""
    path = lock_path(target)
    lock = FileLock(str(path), is_singleton=False)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=timeout, poll_interval=0.1)
    except Timeout:
        raise IndexLockedError(
            f"another build of {target} is running (lock {path} held for over {timeout:.0f} s); "
            "wait for it to finish, or remove the lock file if no build is running") from None
    except OSError as exc:
        raise write_error(exc, target) from None
    key = _key(target)
    _HELD.add(key)
    try:
        _clear_leftovers(target)
        yield
    finally:
        _HELD.discard(key)
        lock.release()


def _key(target: Path) -> Path:
    return Path(os.path.abspath(target))


def is_locked(target: Path) -> bool:
    """True when another process (or another open of the lock) holds ``<target>.lock`` right now."""
    path = lock_path(target)
    if not path.is_file():
        return False
    lock = FileLock(str(path), is_singleton=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:
        return False  # cannot even open it (read-only, no permission): the build itself says so, with the fix
    lock.release()
    return False


def build_folder(target: Path) -> Path:
    """A fresh hidden sibling of ``target`` to build into (``.<name>.build-XXXXXXXX``)."""
    tmp = target.with_name(f".{target.name}.build-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    return tmp


def remove_stale_builds(target: Path) -> None:
    """Remove build folders left by a build that was killed.

    Safe anywhere: a live build writes its folder only while it holds ``<target>.lock``, so the folders are removed
    only by the lock's holder — this process, inside ``folder_lock`` (which already did it on entry), or else after
    taking the lock without waiting; when another process holds it, nothing is touched."""
    if _key(target) in _HELD:
        _clear_leftovers(target)
        return
    path = lock_path(target)
    if not path.is_file() and not any(target.parent.glob(f".{target.name}.build-*")):
        return
    try:
        with folder_lock(target, timeout=0):
            pass  # cleared on entry
    except IndexLockedError:
        return  # a live build holds it: its folder is not stale


def _clear_leftovers(target: Path) -> None:
    # ``.<name>.build-*``: a build killed before its swap.  ``.<name>.old-*``: the previous folder, moved aside by
    # the rename dance of ``swap_in`` (systems without an atomic exchange); when a kill came between its two renames
    # the target is missing and the old folder is the last complete one: it is put back, not deleted.
    try:
        for stale in target.parent.glob(f".{target.name}.build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        for old in sorted(target.parent.glob(f".{target.name}.old-*")):
            if not os.path.lexists(target):
                os.replace(old, target)
            else:
                shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass  # a read-only parent: nothing was left there to clear


def exchange_dirs(a: Path, b: Path) -> bool:
    """Swap two directories in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes
    import ctypes.util

    try:
        renameat2 = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def swap_in(tmp: Path, target: Path) -> None:
    """Put the finished folder ``tmp`` in place of ``target``, atomically where the system allows."""
    # One atomic exchange where the system has it: there is no moment without a complete folder (a kill -9 after
    # it leaves the old one in the build folder, which the next build removes).
    if target.exists() and exchange_dirs(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    # Rename dance: the old folder stays complete and usable until the moment it is renamed away.
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
