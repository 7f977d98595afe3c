"""Build-folder safety shared by the index and the model folder: one lock per target, and an atomic swap into place."""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from index.store.errors import IndexLockedError


def lock_path(target: Path) -> Path:
    """``<target>.lock`` beside the folder it guards."""
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def folder_lock(target: Path, timeout: float = 600.0) -> Iterator[None]:
    """Hold ``<target>.lock`` (filelock: fcntl on POSIX, msvcrt on Windows) so two builds of one folder never run at
    once; wait up to ``timeout`` seconds, then raise IndexLockedError."""
    target.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(target)
    lock = FileLock(str(path), is_singleton=False)
    try:
        lock.acquire(timeout=timeout, poll_interval=0.1)
    except Timeout:
        raise IndexLockedError(
            f"another build of {target} is running (lock {path} held for over {timeout:.0f} s); "
            "wait for it to finish, or remove the lock file if no build is running") from None
    try:
        yield
    finally:
        lock.release()


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
    lock.release()
    return False


def build_folder(target: Path) -> Path:
    """A fresh hidden sibling of ``target`` to build into (``.<name>.build-XXXXXXXX``)."""
    tmp = target.with_name(f".{target.name}.build-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    return tmp


def remove_stale_builds(target: Path) -> None:
    """Remove build folders left by a build that was killed (call under the lock)."""
    for stale in target.parent.glob(f".{target.name}.build-*"):
        shutil.rmtree(stale, ignore_errors=True)


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
