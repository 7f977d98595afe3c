"""A real Milvus server for tests and eval/bench_backends.py: milvus-lite's server binary (gRPC on a free TCP port).

milvus-lite's Python wrapper (``milvus_lite.server.Server``) imports ``pkg_resources``, which setuptools >= 81 no
longer ships; the binary it wraps is started here directly, with the same arguments (db file, address, log level)
and library path.  Clients connect to ``http://127.0.0.1:<port>`` exactly as to a Milvus standalone or cluster.
"""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import time
from pathlib import Path


def milvus_lite_binary() -> Path | None:
    """The ``milvus`` binary shipped in the milvus-lite wheel (None when the package is not installed)."""
    spec = importlib.util.find_spec("milvus_lite")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(list(spec.submodule_search_locations)[0]) / "lib" / "milvus"
    return binary if binary.is_file() else None


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MilvusLite:
    """``with MilvusLite(folder) as server: server.port`` — started on a free port, stopped (by its pid) on exit."""

    def __init__(self, folder: Path):
        self.folder, self.port, self.proc = Path(folder), free_port(), None

    def __enter__(self) -> MilvusLite:
        binary = milvus_lite_binary()
        if binary is None:
            raise RuntimeError("milvus-lite is not installed: pip install -e '.[milvus]'")
        lib = str(binary.parent)
        env = {**os.environ, "LD_LIBRARY_PATH": lib + ":" + os.environ.get("LD_LIBRARY_PATH", "")}
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log = open(self.folder / "milvus.log", "wb")
        self.proc = subprocess.Popen([str(binary), str(self.folder / "milvus.db"), f"127.0.0.1:{self.port}", "ERROR"],
                                     env=env, cwd=str(self.folder), stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"milvus-lite exited with {self.proc.returncode}; see {self.folder / 'milvus.log'}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("milvus-lite did not start listening within 60 s")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def spec(self) -> str:
        return f"milvus://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
