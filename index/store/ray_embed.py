"""Embedding a build's chunks on a Ray cluster: Ray Data ``map_batches`` over an actor pool, one model load per actor.

Reading, parsing, chunking, the reuse of unchanged chunks' vectors and the writing of the index stay in the ingesting
process (``index.store.build``); only the chunks that need encoding go to the cluster.  ``RayEncoder`` has the
signature of ``build._encode`` — ``(embedder, texts, progress) -> (n, dim) unit vectors in input order`` — so the
embedded and the Milvus build use it unchanged.  ``ray`` is imported only here and only when a build asks for a
cluster, so the product works without it (the ``[ray]`` extra).
"""
from __future__ import annotations

import logging
import math
import os
import socket
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from index.store.errors import RayClusterError

RAY_ENV = "POLICYQA_RAY"  # the cluster address when --ray is not given
#: what the ingesting process passes on to the actors' environment, so they build the same model from the same disk
FORWARDED_ENV = ("POLICYQA_DATA", "POLICYQA_MODEL_DIR", "POLICYQA_PRECISION", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "HF_HOME")
_connected: str | None = None  # the address this process is connected to


@dataclass(frozen=True)
class EmbedderRecipe:
    """How an actor builds its embedder: ``load_embedder`` of the model the ingest uses, with its precision."""

    spec: str
    precision: str | None = None

    def __call__(self):
        from index.embed import load_embedder

        return load_embedder(self.spec, self.precision)


@dataclass(frozen=True)
class RayPlan:
    """Where and how to embed: the cluster ``address`` (``host:port``, ``ray://host:port`` or ``auto``), rows per
    batch, actors (None: one per ``cpus_per_actor`` CPUs the cluster offers), retries of a failed batch or a dead
    actor, and the embedder recipe (None: ``EmbedderRecipe`` of the ingest's model; tests pass their own)."""

    address: str
    batch_size: int = 64
    actors: int | None = None
    cpus_per_actor: float = 1.0
    retries: int = 3
    recipe: Callable[[], Any] | None = field(default=None, compare=False)

    @classmethod
    def from_env(cls, address: str | None) -> RayPlan | None:
        """The plan for ``--ray ADDRESS``, else ``$POLICYQA_RAY``; None when neither is set (embed in-process)."""
        address = (address or os.environ.get(RAY_ENV) or "").strip()
        return cls(address) if address else None


def _cannot_reach(address: str, why: str) -> RayClusterError:
    return RayClusterError(f"无法连接 Ray 集群 / cannot reach the Ray cluster at {address} ({why}); start one with "
                           "`ray start --head` (and `ray start --address=HEAD:6379` on each worker) or give its "
                           f"address with --ray (or {RAY_ENV}); the index is unchanged")


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail at once (not after Ray's minute of retries) when nothing listens at ``host:port``."""
    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RayClusterError(f"--ray {address}: expected host:port, ray://host:port or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise _cannot_reach(address, exc.strerror or type(exc).__name__) from None


def _actor_env() -> dict[str, str]:
    """The actors import this process's ``index`` package (a worktree, not whatever is installed) and see its
    model settings."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, **{k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}}


def connect(address: str) -> dict:
    """Connect this process to the cluster at ``address`` (once); returns its size: alive nodes and CPUs."""
    global _connected
    try:
        import ray
    except ImportError:
        raise RayClusterError("--ray needs the ray package: pip install 'policyqa[ray]'") from None
    if _connected != address:
        _probe(address)
        if ray.is_initialized():
            ray.shutdown()
        # the core worker's own log lines (e.g. a warning on every actor with restarts) would cut through the
        # progress bar; failures still arrive as Python exceptions
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        try:
            ray.init(address=address, runtime_env={"env_vars": _actor_env()}, logging_level=logging.ERROR,
                     log_to_driver=False, configure_logging=True)
        except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
            raise _cannot_reach(address, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__) from None
        _connected = address
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return {"nodes": len(nodes), "cpus": float(ray.cluster_resources().get("CPU", 0.0))}


def disconnect() -> None:
    """Leave the cluster (it keeps running)."""
    global _connected
    if _connected is not None:
        import ray

        ray.shutdown()
    _connected = None


class _EmbedActor:
    """One per actor: builds the embedder once, then encodes batches of ``{"row", "text"}``."""

    def __init__(self, recipe: Callable[[], Any]):
        import ray

        self.embedder = recipe()
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = np.asarray(self.embedder.encode_passages([str(t) for t in batch["text"]]), dtype=np.float32)
        return {"row": np.asarray(batch["row"], dtype=np.int64), "vector": vectors,
                "model": np.asarray([f"{self.embedder.name}|{self.embedder.dim}"] * len(vectors)),
                "node": np.asarray([self.node] * len(vectors))}


class RayEncoder:
    """``build._encode`` on a Ray cluster; ``record`` then says what did it (for the manifest's ``embedded_by``)."""

    def __init__(self, plan: RayPlan):
        self.plan = plan
        self.record: dict | None = None

    def __call__(self, embedder, texts: list[str], progress: bool) -> np.ndarray:
        """(len(texts), dim) unit vectors in input order; every row exactly once, or RayClusterError."""
        plan = self.plan
        if not texts:  # every chunk's vector reused: the cluster is not needed
            return np.zeros((0, embedder.dim), dtype=np.float32)
        size = connect(plan.address)
        if size["cpus"] < plan.cpus_per_actor:
            raise RayClusterError(f"the Ray cluster at {plan.address} offers {size['cpus']:g} CPUs, an embedding actor "
                                  f"needs {plan.cpus_per_actor:g}: add a worker (`ray start --address=… --num-cpus=1`)")
        batches = math.ceil(len(texts) / plan.batch_size)
        actors = max(1, min(plan.actors or int(size["cpus"] // plan.cpus_per_actor), batches or 1))
        self.record = {"kind": "ray", "address": plan.address, **size, "actors": actors,
                       "batch_size": plan.batch_size, "retries": plan.retries, "batches": batches}
        out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        import ray
        import ray.data
        from tqdm import tqdm

        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its INFO lines on each execution, after import
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours below counts chunks; Ray Data's would print one per operator
        ctx.print_on_execution_start = False
        ctx.actor_task_retry_on_errors = True  # an exception in a batch retries it too (max_task_retries times)
        # sorted by length, so that each batch pads its texts to similar lengths (as the in-process build does)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ds = ray.data.from_items([{"row": i, "text": texts[i]} for i in order], override_num_blocks=batches)
        recipe = plan.recipe or EmbedderRecipe(embedder.name, getattr(embedder, "precision", None))
        with warnings.catch_warnings():
            # Ray 2.60 bounds actor restarts and batch retries only through ``**ray_remote_args`` (deprecated, to
            # be removed in 2.64; ray is pinned); Ray Data's default is to retry forever.
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ds.map_batches(
                _EmbedActor, fn_constructor_args=(recipe,), batch_size=plan.batch_size, batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=2),
                num_cpus=plan.cpus_per_actor,
                max_restarts=plan.retries, max_task_retries=plan.retries)
        seen, nodes = np.zeros(len(texts), dtype=np.int64), set()
        expected = f"{embedder.name}|{embedder.dim}"
        with tqdm(total=len(texts), desc=f"embedding on Ray ({actors} actors)", unit="chunk",
                  disable=not progress) as bar:
            try:
                for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                    got = set(batch["model"].tolist())
                    if got != {expected}:
                        raise ValueError(f"Ray actors embedded with {sorted(got)}, this build uses {expected}: "
                                         "the cluster's workers must see the same model folder")
                    rows = batch["row"]
                    out[rows] = batch["vector"]
                    np.add.at(seen, rows, 1)
                    nodes.update(batch["node"].tolist())
                    bar.update(len(rows))
            except ray.exceptions.RayError as exc:
                raise RayClusterError(f"embedding on the Ray cluster at {plan.address} failed after "
                                      f"{plan.retries} retries of a batch: {_first_line(exc)}; the index is "
                                      "unchanged") from None
        if not (seen == 1).all():  # Ray's retries must neither lose nor repeat a row
            raise RayClusterError(f"Ray returned {int((seen == 0).sum())} chunks not at all and "
                                  f"{int((seen > 1).sum())} more than once; the index is unchanged")
        self.record["nodes_used"] = len(nodes)  # the nodes whose actors returned batches
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)  # inner product must be cosine


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]
