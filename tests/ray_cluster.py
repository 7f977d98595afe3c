"""A local Ray cluster for the tests and the benchmark: a head node that runs nothing (0 CPUs) and N worker nodes of
one CPU each, every node its own raylet and object store on this machine, stopped (by its processes) on exit and its
session folder removed."""
from __future__ import annotations

import contextlib
import os
import shutil

HEAD_STORE = 200 * 1024**2  # bytes of object store per node: chunks and vectors are small; the box has 2 cores
WORKER_STORE = 150 * 1024**2


@contextlib.contextmanager
def local_cluster(workers: int = 2, cpus_per_worker: int = 1):
    """Yield the address (``ip:port``) of a fresh cluster of ``workers`` worker nodes; shut down on leaving."""
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cluster = Cluster(initialize_head=True, connect=False, shutdown_at_exit=True,
                      head_node_args={"num_cpus": 0, "object_store_memory": HEAD_STORE,
                                      "include_dashboard": False})
    try:
        for _ in range(workers):
            cluster.add_node(num_cpus=cpus_per_worker, object_store_memory=WORKER_STORE)
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        from index.store.ray_embed import disconnect

        session = cluster.head_node.get_session_dir_path() if cluster.head_node else None
        disconnect()
        cluster.shutdown()
        if session:  # this cluster's logs and sockets (/tmp/ray/session_…), not other sessions
            shutil.rmtree(session, ignore_errors=True)
