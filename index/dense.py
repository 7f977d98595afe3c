"""Dense vector search with FAISS: exact inner product while small, HNSW beyond a measured size."""
from __future__ import annotations

import os
from pathlib import Path

import faiss
import numpy as np

#: Below this many vectors an exact ``IndexFlatIP`` is used, above it ``IndexHNSWFlat`` (inner product).
#: Measured with ``bench/bench_search.py --dense-sweep`` (384-d unit vectors, k=100, one thread, this 2-core box):
#:   n            5k     20k    50k    147k
#:   flat p50     0.12   1.14   3.05   9.0 ms   (memory-bound scan, ~0.06 ms per 1k vectors)
#:   HNSW p50     0.31   0.66   0.85   1.3 ms   (M=32, efSearch=128; build 1.3 / 12 / 30 / 105 s)
#: The flat scan is memory-bound, and a server under load pays it per request: on the STARD index (58,951 chunks)
#: it was ~8 ms of the ~38 ms of CPU per /api/search request at 20 concurrent clients (bench/load_test.py), the
#: largest cost after the query encoder. HNSW there changed nothing measurable: STARD held-out R@10 0.6581 and
#: MRR@10 0.5435 either way, 1,229 of 1,235 top-10 lists identical (candidates are re-scored exactly anyway), and the
#: eval's search p50 went from 40.7 to 26.3 ms (the adapter's abstention look-up is a second search); the graph
#: took 6.3 s to build. So: exact search up to 50k vectors (no graph to build), HNSW from there on.
DEFAULT_HNSW_THRESHOLD = 50_000

#: Searches run FAISS on one OpenMP thread: with two, the exact scan of 59k vectors took 15-18 ms instead of 3.5 ms on
#: this 2-core machine (threads wait for each other; one query has nothing to split).  FAISS's thread count is
#: process-global and not thread-safe to flip per query (concurrent searches under ``serve`` raced on it), so it is
#: set once, when a process first loads an index to search it; builds set it back to all cores (``build``).
_search_threads_set = False


def _one_thread_for_search() -> None:
    global _search_threads_set
    if not _search_threads_set:
        faiss.omp_set_num_threads(1)
        _search_threads_set = True


class DenseIndex:
    """Inner-product search over L2-normalised float32 vectors (so scores are cosines)."""

    def __init__(self, index: faiss.Index, kind: str):
        self.index = index
        self.kind = kind  # "flat" | "hnsw"
        self._ef_search = index.hnsw.efSearch if kind == "hnsw" else 0  # never changed after this: see ``search``

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        hnsw_threshold: int = DEFAULT_HNSW_THRESHOLD,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
    ) -> DenseIndex:
        """Index ``vectors`` (n, dim); exact below ``hnsw_threshold`` rows, HNSW at or above it."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-D (n, dim), got shape {vectors.shape}")
        dim = vectors.shape[1]
        global _search_threads_set
        faiss.omp_set_num_threads(os.cpu_count() or 1)  # a graph builds on every core
        _search_threads_set = False
        if len(vectors) >= hnsw_threshold:
            index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
            kind = "hnsw"
        else:
            index, kind = faiss.IndexFlatIP(dim), "flat"
        if len(vectors):
            index.add(vectors)
        return cls(index, kind)

    @property
    def size(self) -> int:
        """Number of indexed vectors."""
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.index.d)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, row ids) for one query vector, best first; rows of -1 (HNSW shortfall) removed."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        _one_thread_for_search()
        params = None
        if self.kind == "hnsw":
            # efSearch must cover k, else HNSW returns fewer than k neighbours.  Per call (SearchParametersHNSW),
            # never on the shared index: concurrent searches with different k each get their own.
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(self._ef_search, k)
        scores, ids = self.index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k,
                                        params=params)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def save(self, path: Path) -> None:
        """Write the FAISS index to ``path``."""
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        """Read an index written by ``save``."""
        index = faiss.read_index(str(path))
        return cls(index, "hnsw" if isinstance(index, faiss.IndexHNSWFlat) else "flat")


def exact_scores(vectors: np.ndarray, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Cosines of ``query`` with ``vectors[rows]`` (used when a filter leaves few rows: exact beats over-fetching)."""
    return vectors[rows] @ query.astype(np.float32).reshape(-1)
