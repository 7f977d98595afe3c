"""Export files of the page: written once, readable only by the server's user, kept for a while, served only to
the browser session that made them (app/sessions.py serves ``…/pq-export/<token>/<name>``).

Earlier exports were written to a shared ``/tmp/policyqa-exports`` and then copied again into Gradio's cache, both
world-readable and never removed; one stale sub-folder made every later export fail. Now each server has its own
folder (``mkdtemp``: mode 0700, a name nobody can take first), each export is a sub-folder named by a random token
holding 0600 files, the store keeps who made it, and anything older than ``ttl`` seconds (or not made by this
store) is removed ``ttl`` seconds after it was made (and at every export), whatever it is (file, folder, symlink).
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

#: Seconds an export stays downloadable (``policyqa serve --export-ttl``).
EXPORT_TTL = 3600.0
PREFIX = "policyqa-exports-"  # + the server's pid: a folder whose server is gone (killed) is removed by the next
ROUTE = "pq-export"  # the page links to ``pq-export/<token>/<name>``, relative to the page's own URL
MEDIA_TYPES = {".md": "text/markdown; charset=utf-8", ".csv": "text/csv; charset=utf-8", ".txt": "text/plain; charset=utf-8"}


@dataclass(frozen=True)
class Export:
    """One export: who made it (a session owner key, app/sessions.py), when, and its files by name."""

    owner: str
    created: float
    files: dict[str, Path]


class ExportStore:
    """The export folder of one server: ``add`` writes, ``find`` looks a download up, ``prune`` removes old ones."""

    def __init__(self, ttl: float = EXPORT_TTL, parent: Path | None = None):
        self.ttl = ttl
        parent = Path(parent or tempfile.gettempdir())
        _remove_orphans(parent)
        self.folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))  # 0700, unique
        self._exports: dict[str, Export] = {}
        self._lock = threading.Lock()

    def add(self, owner: str, files: dict[str, bytes]) -> list[Path]:
        """Write ``files`` (name -> bytes) once, 0600, in a new 0700 sub-folder; their paths, in order."""
        self.prune()
        token = secrets.token_hex(16)
        sub = self.folder / token
        sub.mkdir(mode=0o700)
        paths = {}
        for name, data in files.items():
            path = sub / Path(name).name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            paths[path.name] = path
        with self._lock:
            self._exports[token] = Export(owner, time.time(), paths)
        timer = threading.Timer(self.ttl + 1, self.prune)  # removed on time even if nobody exports again
        timer.daemon = True
        timer.start()
        return list(paths.values())

    def url(self, path: Path) -> str:
        """The page-relative download link of an exported ``path``."""
        return f"{ROUTE}/{path.parent.name}/{quote(path.name)}"

    def find(self, token: str, name: str, owner: str) -> Path | None:
        """The file ``name`` of export ``token`` if ``owner`` made it and it has not expired; else None."""
        with self._lock:
            export = self._exports.get(token)
        if export is None or export.owner != owner or time.time() - export.created > self.ttl:
            return None
        path = export.files.get(name)
        return path if path is not None and path.is_file() else None

    def prune(self, now: float | None = None) -> None:
        """Remove exports older than ``ttl`` and anything in the folder this store did not make (never raises)."""
        now = time.time() if now is None else now
        with self._lock:
            for token in [t for t, e in self._exports.items() if now - e.created > self.ttl]:
                del self._exports[token]
            keep = set(self._exports)
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            log.exception("cannot list the export folder %s", self.folder)
            return
        for entry in entries:
            if entry.name not in keep:
                _remove(Path(entry.path))

    def close(self) -> None:
        """Remove the whole folder (the server is stopping)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _remove_orphans(parent: Path) -> None:
    """Remove export folders of this user's servers that are no longer running (killed before they cleaned up)."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        pid = entry.name[len(PREFIX):].split("-", 1)[0] if entry.name.startswith(PREFIX) else ""
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)  # raises if no such process
        except ProcessLookupError:
            _remove(Path(entry.path))
        except OSError:
            continue


def _remove(path: Path) -> None:
    """Delete ``path`` whatever it is; a symlink is removed itself, never followed."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        log.warning("could not remove old export %s", path, exc_info=True)
