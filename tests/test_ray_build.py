"""Building with ``--ray``: the chunks are embedded on a local Ray cluster of two worker nodes (one CPU each, plus a
head that runs nothing; tests/ray_cluster.py), started once for the module and shut down by its processes.

What must hold (issue #17, item 3): the index equals the single-process build's (chunk ids, texts, vectors within
cosine 0.9999); a killed actor's batch is retried and nothing is lost or duplicated; a re-ingest embeds only the
changed chunks on the cluster; an unreachable address is one line naming it.  Skipped without the ray extra.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[ray]')")

from fakes import HashEmbedder  # noqa: E402
from index.pipeline import ingest_paths  # noqa: E402
from index.store import CHUNKS, VECTORS, build_index, read_manifest  # noqa: E402
from index.store.ray_embed import RayPlan  # noqa: E402
from index_fixtures import corpus  # noqa: E402
from ray_cluster import local_cluster  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FAKE_CLI = [sys.executable, str(ROOT / "tests" / "fake_cli.py")]
# this module's classes travel to the actors by value (the workers cannot import a test module)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster() -> str:
    with local_cluster(workers=2) as address:
        yield address


def _index(ix: Path) -> tuple[list[str], list[str], np.ndarray]:
    """(chunk ids, chunk texts, vectors) of an embedded index, in its row order."""
    rows = [json.loads(line) for line in (ix / CHUNKS).read_text(encoding="utf-8").splitlines()]
    return [r["id"] for r in rows], [r["text"] for r in rows], np.load(ix / VECTORS)


def assert_same_index(a: Path, b: Path, min_cos: float = 0.9999) -> None:
    ids_a, texts_a, va = _index(a)
    ids_b, texts_b, vb = _index(b)
    assert ids_a == ids_b and texts_a == texts_b
    assert len(set(ids_b)) == len(ids_b)  # nothing duplicated
    assert va.shape == vb.shape and float(np.min(np.sum(va * vb, axis=1))) >= min_cos


def _ray_record(ix: Path) -> dict:
    return dict(read_manifest(ix).build.embedded_by or {})


def test_ray_build_equals_the_single_process_build(cluster, tmp_path):
    build_index(corpus(), tmp_path / "single", HashEmbedder(), progress=False)
    report = build_index(corpus(), tmp_path / "ray", HashEmbedder(), progress=False,
                         ray=RayPlan(cluster, batch_size=2))
    assert report.encoded == report.manifest.build.counts["chunks"] > 8
    assert_same_index(tmp_path / "single", tmp_path / "ray", min_cos=0.999999)
    rec = _ray_record(tmp_path / "ray")
    # the actors' embedder was built from the model the manifest names (the registered fake); one actor per worker
    assert rec["kind"] == "ray" and rec["nodes"] == 3 and rec["cpus"] == 2 and rec["actors"] == 2, rec
    assert read_manifest(tmp_path / "single").build.embedded_by is None
    # a manifest without Ray keeps the layout it had before (readers of older versions still read it)
    assert "embedded_by" not in json.loads((tmp_path / "single" / "manifest.json").read_text())["build"]


def test_the_plan_comes_from_the_flag_then_the_environment(monkeypatch):
    monkeypatch.delenv("POLICYQA_RAY", raising=False)
    assert RayPlan.from_env(None) is None and RayPlan.from_env("  ") is None
    monkeypatch.setenv("POLICYQA_RAY", "10.0.0.5:6379")
    assert RayPlan.from_env(None).address == "10.0.0.5:6379"
    assert RayPlan.from_env("auto").address == "auto"  # the flag wins


@dataclass(frozen=True)
class KillOnce:
    """An embedder recipe whose first batch anywhere kills its own actor process (SIGKILL), once (marked by a file)."""

    marker: str

    def __call__(self):
        marker = self.marker

        class Killer(HashEmbedder):
            def encode_passages(self, texts, progress=False):
                if not os.path.exists(marker):
                    Path(marker).write_text(str(os.getpid()))
                    os.kill(os.getpid(), signal.SIGKILL)
                return super().encode_passages(texts, progress)

        return Killer()


def test_a_killed_actor_s_batch_is_retried_and_nothing_is_lost_or_duplicated(cluster, tmp_path):
    marker = tmp_path / "killed"
    build_index(corpus(), tmp_path / "single", HashEmbedder(), progress=False)
    report = build_index(corpus(), tmp_path / "ray", HashEmbedder(), progress=False,
                         ray=RayPlan(cluster, batch_size=4, recipe=KillOnce(str(marker))))
    assert marker.is_file()  # an actor did die in the middle of the build
    assert report.encoded == report.manifest.build.counts["chunks"]
    assert_same_index(tmp_path / "single", tmp_path / "ray", min_cos=0.999999)


@dataclass(frozen=True)
class Counting:
    """A recipe whose embedder appends each text it encodes to a file (what the cluster was asked to embed) and
    takes 0.2 s a batch, like a model: the fake alone is so fast that the first actor up could take every batch."""

    log: str

    def __call__(self):
        log = self.log

        class Counter(HashEmbedder):
            def encode_passages(self, texts, progress=False):
                time.sleep(0.2)
                with open(log, "a", encoding="utf-8") as fh:
                    fh.writelines(json.dumps(t, ensure_ascii=False) + "\n" for t in texts)
                return super().encode_passages(texts, progress)

        return Counter()


def test_reingest_embeds_only_the_changed_document_s_chunks_on_ray(cluster, corpus_dir, tmp_path):
    docs, ix, log = tmp_path / "docs", tmp_path / "ix", tmp_path / "embedded.jsonl"
    shutil.copytree(corpus_dir, docs)
    plan = RayPlan(cluster, batch_size=16, recipe=Counting(str(log)))
    first = ingest_paths([docs], ix, progress=False, embedder=HashEmbedder(),
                         ray=RayPlan(cluster, batch_size=4, recipe=Counting(str(log))))
    assert first.embedded == first.chunks == len(log.read_text(encoding="utf-8").splitlines())
    assert _ray_record(ix)["nodes_used"] == 2  # both worker nodes embedded batches
    log.unlink()
    again = ingest_paths([docs], ix, progress=False, embedder=HashEmbedder(), ray=plan)
    assert again.unchanged and not log.exists()  # same files: nothing sent to the cluster

    changed = sorted(docs.glob("00*.txt"))[1]
    text = changed.read_text(encoding="utf-8")
    changed.write_text(text.replace("。", "，并加强督促检查。", 1), encoding="utf-8")
    old = {r["key"] for r in map(json.loads, (ix / CHUNKS).read_text(encoding="utf-8").splitlines())}
    third = ingest_paths([docs], ix, progress=False, embedder=HashEmbedder(), ray=plan)
    rows = [json.loads(line) for line in (ix / CHUNKS).read_text(encoding="utf-8").splitlines()]
    new_rows = [r for r in rows if r["key"] not in old]
    sent = log.read_text(encoding="utf-8").splitlines()
    assert 0 < third.embedded == len(new_rows) == len(sent) < third.chunks
    assert {r["doc_id"] for r in new_rows} == {changed.stem}  # only the changed document's chunks
    assert _ray_record(ix)["batches"] == -(-len(new_rows) // 16)
    ingest_paths([docs], tmp_path / "single", progress=False, embedder=HashEmbedder())
    assert_same_index(tmp_path / "single", ix, min_cos=0.999999)


def _cli(*args, env=None, timeout=180):
    return subprocess.run(FAKE_CLI + list(args), capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, **(env or {})})


@pytest.mark.slow  # three CLI processes, each importing ray and joining the cluster (~15 s)
def test_cli_ingest_with_ray_equals_the_single_process_ingest(cluster, corpus_dir, tmp_path):
    res = _cli("ingest", str(corpus_dir), "--index", str(tmp_path / "ray"), "--no-progress", "--ray", cluster)
    assert res.returncode == 0, res.stderr
    assert f"embedded on the Ray cluster at {cluster}: " in res.stdout, res.stdout
    assert "Traceback" not in res.stderr
    assert _cli("ingest", str(corpus_dir), "--index", str(tmp_path / "single"), "--no-progress").returncode == 0
    assert_same_index(tmp_path / "single", tmp_path / "ray", min_cos=0.999999)
    assert _ray_record(tmp_path / "ray")["actors"] == 2
    # POLICYQA_RAY is the same setting; an unchanged corpus then needs no cluster work
    res = _cli("ingest", str(corpus_dir), "--index", str(tmp_path / "ray"), "--no-progress",
               env={"POLICYQA_RAY": cluster})
    assert res.returncode == 0 and "unchanged" in res.stdout, res.stdout + res.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_unreachable_ray_address_is_one_line_naming_it(corpus_dir, tmp_path, how):
    address = f"127.0.0.1:{_free_port()}"
    args, env = (["--ray", address], None) if how == "flag" else ([], {"POLICYQA_RAY": address})
    res = _cli("ingest", str(corpus_dir), "--index", str(tmp_path / "ix"), "--no-progress", *args, env=env,
               timeout=60)
    err = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2, res.stderr
    assert len(err) == 1 and address in err[0] and "Ray" in err[0] and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "ix").exists()  # failed before anything was read or written


@pytest.mark.model
def test_ray_build_with_the_real_model_equals_the_single_process_build(cluster, corpus_dir, tmp_path):
    from index.embed import load_embedder

    embedder = load_embedder()
    single = ingest_paths([corpus_dir], tmp_path / "single", progress=False, embedder=embedder)
    on_ray = ingest_paths([corpus_dir], tmp_path / "ray", progress=False, embedder=embedder,
                          ray=RayPlan(cluster, batch_size=32))
    assert single.chunks == on_ray.chunks == on_ray.embedded
    assert_same_index(tmp_path / "single", tmp_path / "ray", min_cos=0.9999)
    rec = _ray_record(tmp_path / "ray")
    assert rec["nodes_used"] == 2 and read_manifest(tmp_path / "ray").build.model.name == embedder.name


def test_an_address_that_is_not_host_port_is_refused_naming_the_form():
    from index.store.errors import RayClusterError
    from index.store.ray_embed import connect

    with pytest.raises(RayClusterError, match="expected host:port, ray://host:port or auto"):
        connect("nonsense")


@pytest.mark.slow  # starts a Milvus server besides the cluster
@pytest.mark.milvus
def test_ray_build_into_milvus_searches_like_the_single_process_build(cluster, tmp_path):
    pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install -e '.[milvus]')")
    from milvus_server import MilvusLite, milvus_lite_binary

    from index.search import Searcher

    if milvus_lite_binary() is None:
        pytest.skip("milvus-lite is not installed (pip install -e '.[milvus]')")
    emb = HashEmbedder()
    build_index(corpus(), tmp_path / "single", emb, progress=False)
    with MilvusLite(tmp_path / "srv") as server:
        report = build_index(corpus(), tmp_path / "milvus", emb, progress=False, backend=f"{server.spec}/ray",
                             ray=RayPlan(cluster, batch_size=4))
        assert dict(report.manifest.build.embedded_by)["kind"] == "ray"
        a, b = Searcher.load(tmp_path / "single", emb), Searcher.load(tmp_path / "milvus", emb)
        for query in ("哪些条款涉及医保异地结算", "高铁", "公交一卡通"):
            ha, hb = a.query(query, k=5).hits, b.query(query, k=5).hits
            assert [h.chunk_id for h in ha] == [h.chunk_id for h in hb]
            assert np.allclose([h.score for h in ha], [h.score for h in hb], atol=1e-5)
