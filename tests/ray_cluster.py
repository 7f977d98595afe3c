"""A local Ray cluster for the tests and the benchmark: a head node that runs nothing (0 CPUs) and N worker nodes of
one CPU each, every node its own raylet and object store on this machine, stopped (by its processes) on exit and its
session folder removed."""
from __future__ import annotations

import contextlib
import os
import shutil
import sys

HEAD_STORE = 200 * 1024**2  # bytes of object store per node: chunks and vectors are small; the box has 2 cores
WORKER_STORE = 150 * 1024**2
START_TIMEOUT = 120  # seconds for the nodes to register: Ray's 30 s default was once too short on this busy box


def _start(workers: int, cpus_per_worker: int):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, shutdown_at_exit=True,
                      head_node_args={"num_cpus": 0, "object_store_memory": HEAD_STORE,
                                      "include_dashboard": False})
    try:
        for _ in range(workers):
            cluster.add_node(wait=False, num_cpus=cpus_per_worker, object_store_memory=WORKER_STORE)
        cluster.wait_for_nodes(timeout=START_TIMEOUT)
    except BaseException:
        _stop(cluster)
        raise
    return cluster


def _stop(cluster) -> None:
    session = cluster.head_node.get_session_dir_path() if cluster.head_node else None
    cluster.shutdown()
    if session:  # this cluster's logs and sockets (/tmp/ray/session_…), not other sessions
        shutil.rmtree(session, ignore_errors=True)


@contextlib.contextmanager
def local_cluster(workers: int = 2, cpus_per_worker: int = 1):
    """Yield the address (``ip:port``) of a fresh cluster of ``workers`` worker nodes; shut down on leaving.  A start
    that fails (a node not registering in time on a loaded machine) is tried once more, saying why."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        cluster = _start(workers, cpus_per_worker)
    except Exception as exc:  # noqa: BLE001 — any start failure: one more try, then it is the fixture's error
        print(f"ray_cluster: first start failed ({type(exc).__name__}: {exc}); starting again", file=sys.stderr)
        cluster = _start(workers, cpus_per_worker)
    try:
        yield cluster.address
    finally:
        from index.store.ray_embed import disconnect

        disconnect()
        _stop(cluster)
