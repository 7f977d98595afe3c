"""The Milvus backend against a real Milvus server (milvus-lite's engine on a free port, tests/milvus_server.py).

The same code talks to a Milvus standalone or cluster: only the ``milvus://host:port/collection`` differs.  Skipped
with the reason when pymilvus or milvus-lite is not installed (``pip install -e '.[milvus]'``).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from milvus_server import MilvusLite, free_port, milvus_lite_binary

pytestmark = pytest.mark.milvus
pytest.importorskip("pymilvus", reason="pymilvus is not installed (pip install -e '.[milvus]')")
if milvus_lite_binary() is None:
    pytest.skip("milvus-lite is not installed (pip install -e '.[milvus]')", allow_module_level=True)

from index.pipeline import ingest_paths  # noqa: E402
from index.search import Searcher  # noqa: E402
from index.store import IndexMismatchError, IndexStoreError, build_index  # noqa: E402
from index_fixtures import corpus  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FAKE_CLI = [sys.executable, str(ROOT / "tests" / "fake_cli.py")]


@pytest.fixture(scope="module")
def milvus(tmp_path_factory):
    """One Milvus server for the module (started on a free port, stopped by its pid)."""
    with MilvusLite(tmp_path_factory.mktemp("milvus")) as server:
        yield server


@pytest.fixture(scope="module")
def pair(milvus, tmp_path_factory):
    """(embedded searcher, Milvus searcher) over the same hand-built documents, fake embedder."""
    from fakes import HashEmbedder

    emb, root = HashEmbedder(), tmp_path_factory.mktemp("pair")
    build_index(corpus(), root / "embedded", emb, progress=False)
    build_index(corpus(), root / "milvus", emb, progress=False, backend=f"{milvus.spec}/fixture")
    return Searcher.load(root / "embedded", emb), Searcher.load(root / "milvus", emb), root


def _same(a, b) -> None:
    assert [h.chunk_id for h in a.hits] == [h.chunk_id for h in b.hits]
    assert np.allclose([h.score for h in a.hits], [h.score for h in b.hits], atol=1e-5)
    assert (a.reason, a.notes) == (b.reason, b.notes)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
@pytest.mark.parametrize("query,filters", [
    ("哪些条款涉及医保异地结算", {}), ("医保结算", {"region": "萍乡"}), ("医保结算", {"issuer": "人民政府"}),
    ("铁路", {"year": 2020}), ("医保", {"doc": "czt"}), ("medical insurance settlement", {}),
    ("医保", {"region": "江西", "year": 2019}), ("医保", {"region": "不存在的地区"}), ("", {})])
def test_milvus_answers_exactly_as_the_embedded_index(pair, mode, query, filters):
    embedded, milvus, _ = pair
    _same(embedded.query(query, 5, mode=mode, **filters), milvus.query(query, 5, mode=mode, **filters))


def test_candidate_evidence_is_the_embedded_one(pair):
    """What the relevance stage reads: each candidate's cosine, BM25 score and lexical coverage."""
    embedded, milvus, _ = pair
    for text in ("推进医保异地就医即时结算", "高铁旅游线路"):
        a, b = (s._rank(text, "hybrid", 20, None) for s in (embedded, milvus))
        assert np.array_equal(a.rows, b.rows)
        assert np.allclose(a.cos, b.cos, atol=1e-6) and np.allclose(a.bm25, b.bm25, atol=1e-4)
        assert np.allclose(embedded._ix.lexical.coverage(text, a.rows), milvus._ix.lexical.coverage(text, b.rows))
        assert embedded._ix.lexical.idf_split(text) == milvus._ix.lexical.idf_split(text)


def test_filters_run_inside_milvus(pair):
    """The Milvus searcher never receives an out-of-filter row from the server (no filtering after fetching)."""
    _, milvus, _ = pair
    backend = milvus._backend
    scope = milvus._filter_mask(None, "萍乡", None, None)
    rows = backend.dense_candidates(milvus.query_vector("医保"), 50, scope, 100)
    assert len(rows) and all(milvus.chunks[r].doc_id == "px" for r in rows)
    assert set(backend.sparse_search(backend.lexicon.query_vector("医保结算"), 50, "year == 2019")) <= {
        i for i, c in enumerate(milvus.chunks) if c.doc_id == "px"}


def test_manifest_records_the_backend_and_embedded_manifests_are_unchanged(pair, milvus):
    embedded, m, root = pair
    backend = dict(m.manifest.build.backend)
    assert backend["kind"] == "milvus" and backend["uri"] == f"{milvus.spec}/fixture"
    assert backend["physical"].startswith("fixture__") and backend["consistency_level"] == "Strong"
    assert embedded.manifest.build.backend is None
    assert "backend" not in json.loads((root / "embedded" / "manifest.json").read_text())["build"]


def test_default_corpus_eval_parity(milvus, corpus_dir, tmp_path):
    """Recall@10 / MRR@10 of the bundled questions on corpus/: Milvus within 0.02 of embedded (fake embedder)."""
    from eval.questions import load_questions
    from eval.run import evaluate
    from fakes import HashEmbedder

    emb = HashEmbedder()
    ingest_paths([corpus_dir], tmp_path / "e", progress=False, embedder=emb)
    ingest_paths([corpus_dir], tmp_path / "m", progress=False, embedder=emb, backend=f"{milvus.spec}/corpus")
    questions = load_questions()
    figures = {}
    for name in ("e", "m"):
        report = evaluate(Searcher.load(tmp_path / name, emb), questions, k=10)
        figures[name] = {s: report["splits"][s]["overall"] for s in report["splits"]}
    for split, e in figures["e"].items():
        m = figures["m"][split]
        print(split, "embedded", e["recall@10"], e["mrr@10"], "milvus", m["recall@10"], m["mrr@10"])
        assert abs(m["recall@10"] - e["recall@10"]) <= 0.02 and abs(m["mrr@10"] - e["mrr@10"]) <= 0.02, (split, e, m)


def test_another_address_for_the_same_server(pair, milvus, monkeypatch):
    """POLICYQA_MILVUS_ADDRESS: another machine reaches the same Milvus under another name (the build record is still
    checked); a wrong one is one line naming it."""
    _, m, root = pair
    monkeypatch.setenv("POLICYQA_MILVUS_ADDRESS", f"localhost:{milvus.port}")
    _same(m.query("医保", 3), Searcher.load(root / "milvus", m.embedder).query("医保", 3))
    port = free_port()
    monkeypatch.setenv("POLICYQA_MILVUS_ADDRESS", f"127.0.0.1:{port}")
    with pytest.raises(IndexStoreError, match=f"milvus://127.0.0.1:{port}/fixture"):
        Searcher.load(root / "milvus", m.embedder)


def test_another_model_is_refused(milvus, tmp_path):
    """A collection whose build record names another model than the local manifest: refused with the fix."""
    from pymilvus import DataType, MilvusClient

    from fakes import HashEmbedder

    emb = HashEmbedder()
    build_index(corpus()[:2], tmp_path / "ix", emb, progress=False, backend=f"{milvus.spec}/other")
    searcher = Searcher.load(tmp_path / "ix", emb)
    physical = searcher.manifest.build.backend["physical"]
    client = MilvusClient(uri=f"http://127.0.0.1:{milvus.port}")
    client.drop_collection(physical)  # someone rebuilt it with another model
    schema = client.create_schema(auto_id=False, description=json.dumps({"model": "intfloat/e5-large", "dim": 1024}))
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=1024)
    client.create_collection(physical, schema=schema)
    with pytest.raises(IndexMismatchError, match=f"built with model intfloat/e5-large.*--index {milvus.spec}/other$"):
        Searcher.load(tmp_path / "ix", emb)
    client.drop_collection(physical)
    with pytest.raises(IndexStoreError, match="does not exist"):
        Searcher.load(tmp_path / "ix", emb)


def _cli(*args, env=None):
    return subprocess.run(FAKE_CLI + list(args), capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def test_cli_ingest_search_eval_through_a_milvus_uri(milvus, corpus_dir, tmp_path):
    uri = f"{milvus.spec}/cli"
    env = {"POLICYQA_DATA": str(tmp_path)}
    ing = _cli("ingest", str(corpus_dir), "--index", uri, "--no-progress", env=env)
    assert ing.returncode == 0, ing.stderr
    assert (tmp_path / "milvus" / f"127.0.0.1_{milvus.port}_cli" / "manifest.json").is_file()
    out = _cli("search", "医保异地结算", "--k", "3", "--json", "--index", uri, env=env)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["hits"]) == 3
    ev = _cli("eval", "--index", uri, "--out", str(tmp_path / "reports"), env=env)
    assert ev.returncode == 0, ev.stderr


def test_unreachable_milvus_is_one_line_naming_the_uri(tmp_path, corpus_dir):
    uri = f"milvus://127.0.0.1:{free_port()}/nobody"
    res = _cli("ingest", str(corpus_dir), "--index", uri, "--no-progress", env={"POLICYQA_DATA": str(tmp_path)})
    assert res.returncode == 2
    err = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(err) == 1 and uri in err[0] and "Traceback" not in res.stderr, res.stderr


def test_a_stopped_server_is_one_line_on_search(tmp_path, corpus_dir):
    env = {"POLICYQA_DATA": str(tmp_path)}
    with MilvusLite(tmp_path / "srv") as server:
        uri = f"{server.spec}/gone"
        assert _cli("ingest", str(corpus_dir), "--index", uri, "--no-progress", env=env).returncode == 0
    res = _cli("search", "医保", "--index", uri, env=env)
    err = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(err) == 1 and uri in err[0] and "Traceback" not in res.stderr, res.stderr


def test_the_page_and_json_route_handlers_work_on_milvus(pair):
    """What `serve` calls: the same JSON as on the embedded index; the full text comes from the local folder."""
    from app.ui import SearchApp

    embedded, milvus, _ = pair
    a, b = SearchApp(embedded), SearchApp(milvus)
    assert a.api_search("医保异地结算", 5, region="湖南") == b.api_search("医保异地结算", 5, region="湖南")
    hit = milvus.search("医保异地结算", 1)[0]
    assert b.document_view(hit.doc_id, hit.provision_id) == a.document_view(hit.doc_id, hit.provision_id)


def test_filter_values_are_quoted_not_expressions(pair):
    """A filter value is a string literal in the Milvus expression, never part of it."""
    from index.backend import Scope
    from index.milvus import filter_expr

    expr = filter_expr(Scope(np.ones(1, bool), doc='x" or year > 0 or doc_id == "', region='a\\"b'), [3, 4])
    assert expr == ('row in [3,4] and doc_id == "x\\" or year > 0 or doc_id == \\"" and region like "%a\\\\\\"b%"')
    _, milvus, _ = pair
    assert milvus._backend.dense_candidates(milvus.query_vector("医保"), 5, Scope(
        np.ones(len(milvus.chunks), bool), doc='px" or doc_id != "'), 100).size == 0


class _Counting:
    """The fake embedder, counting the passages it was asked to encode."""

    def __new__(cls):
        from fakes import HashEmbedder

        class Counting(HashEmbedder):
            encoded = 0

            def encode_passages(self, texts, progress=False):
                self.encoded += len(texts)
                return super().encode_passages(texts, progress)

        return Counting()


def test_a_milvus_rebuild_encodes_only_the_changed_chunks(milvus, tmp_path):
    """Same incremental rule as the embedded index: vectors of unchanged chunks come from the previous build's
    collection (by chunk key), and the result is the fresh build's, score for score."""
    from dataclasses import replace

    docs = corpus()
    emb = _Counting()
    first = build_index(docs, tmp_path / "ix", emb, progress=False, backend=f"{milvus.spec}/reuse")
    assert first.encoded == first.manifest.build.counts["chunks"] and first.reused == 0
    changed = [replace(docs[0], title=docs[0].title + "（修订）")] + docs[1:]  # one document's chunks change
    emb.encoded = 0
    again = build_index(changed, tmp_path / "ix", emb, progress=False, backend=f"{milvus.spec}/reuse")
    assert 0 < again.encoded < again.manifest.build.counts["chunks"] and again.reused > 0
    assert emb.encoded == again.encoded == again.manifest.build.counts["encoded"]
    fresh = build_index(changed, tmp_path / "fresh", _Counting(), progress=False, backend=f"{milvus.spec}/fresh")
    assert fresh.reused == 0
    a, b = Searcher.load(tmp_path / "ix", emb), Searcher.load(tmp_path / "fresh", emb)
    for text in ("医保异地结算", "铁路", "高铁旅游线路"):
        _same(a.query(text, 5), b.query(text, 5))


def test_vectors_are_taken_from_an_embedded_index_named_explicitly(milvus, tmp_path, monkeypatch):
    """POLICYQA_REUSE_VECTORS: a Milvus ingest takes every vector from an embedded index of the same documents and
    model (nothing encoded), and answers as that index does; one built by another model gives nothing."""
    from fakes import HashEmbedder

    build_index(corpus(), tmp_path / "embedded", HashEmbedder(), progress=False)
    monkeypatch.setenv("POLICYQA_REUSE_VECTORS", str(tmp_path / "embedded"))
    emb = _Counting()
    report = build_index(corpus(), tmp_path / "m", emb, progress=False, backend=f"{milvus.spec}/explicit")
    assert emb.encoded == 0 and report.reused == report.manifest.build.counts["chunks"]
    a, b = Searcher.load(tmp_path / "embedded", emb), Searcher.load(tmp_path / "m", emb)
    _same(a.query("医保异地结算", 5), b.query("医保异地结算", 5))
    other = _Counting()
    other.name = "another-model"
    report = build_index(corpus(), tmp_path / "o", other, progress=False, backend=f"{milvus.spec}/othermodel")
    assert report.reused == 0 and other.encoded == report.manifest.build.counts["chunks"]


def test_a_collection_of_another_model_is_one_line_at_the_cli(milvus, corpus_dir, tmp_path):
    """The CLI's face of the model check: exit 2, one line naming the collection, both models and the fix."""
    from pymilvus import DataType, MilvusClient

    uri, env = f"{milvus.spec}/clim", {"POLICYQA_DATA": str(tmp_path)}
    assert _cli("ingest", str(corpus_dir), "--index", uri, "--no-progress", env=env).returncode == 0
    manifest = json.loads((tmp_path / "milvus" / f"127.0.0.1_{milvus.port}_clim" / "manifest.json").read_text())
    physical = manifest["build"]["backend"]["physical"]
    client = MilvusClient(uri=f"http://127.0.0.1:{milvus.port}")
    client.drop_collection(physical)
    schema = client.create_schema(auto_id=False, description=json.dumps({"model": "BAAI/bge-m3", "dim": 1024}))
    schema.add_field("row", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=1024)
    client.create_collection(physical, schema=schema)
    res = _cli("search", "医保", "--index", uri, env=env)
    err = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and len(err) == 1 and "Traceback" not in res.stderr, res.stderr
    assert "BAAI/bge-m3" in err[0] and "fake-hash-ngrams" in err[0] and uri in err[0], err[0]



def test_deployment_settings_are_applied_recorded_and_searched_with(milvus, tmp_path, monkeypatch):
    """POLICYQA_MILVUS_INDEX / NLIST / NPROBE / SHARDS / CONSISTENCY: the collection is created with them, the manifest
    records them, and an IVF_FLAT index probing every list answers exactly as the embedded index."""
    from pymilvus import MilvusClient

    from fakes import HashEmbedder

    emb = HashEmbedder()
    build_index(corpus(), tmp_path / "e", emb, progress=False)
    for name, value in (("INDEX", "ivf_flat"), ("NLIST", "4"), ("NPROBE", "4"), ("SHARDS", "2"),
                        ("CONSISTENCY", "bounded")):
        monkeypatch.setenv(f"POLICYQA_MILVUS_{name}", value)
    from pymilvus import MilvusClient as Client

    sent = {}
    create = Client.create_collection

    def spy(self, name, **kw):  # what the server is asked for
        sent.update(kw)
        return create(self, name, **kw)

    monkeypatch.setattr(Client, "create_collection", spy)
    build_index(corpus(), tmp_path / "m", emb, progress=False, backend=f"{milvus.spec}/deploy")
    assert (sent["num_shards"], sent["consistency_level"]) == (2, "Bounded")
    m = Searcher.load(tmp_path / "m", emb)
    backend = dict(m.manifest.build.backend)
    assert (backend["index_type"], backend["index_params"], backend["nprobe"], backend["shards"],
            backend["consistency_level"]) == ("IVF_FLAT", {"nlist": 4}, 4, 2, "Bounded")
    client = MilvusClient(uri=f"http://127.0.0.1:{milvus.port}")
    # milvus-lite (one process) keeps neither: it reports num_shards 0 and Strong; the request above is what counts
    idx = client.describe_index(backend["physical"], "vector")
    assert idx["index_type"] == "IVF_FLAT" and str(idx.get("nlist")) == "4", idx
    e = Searcher.load(tmp_path / "e", emb)
    for text in ("医保异地结算", "铁路", "高铁旅游线路"):
        _same(e.query(text, 5), m.query(text, 5))


def test_a_wrong_deployment_setting_is_refused_before_building(milvus, tmp_path, monkeypatch):
    from fakes import HashEmbedder

    monkeypatch.setenv("POLICYQA_MILVUS_INDEX", "DISKANN")
    with pytest.raises(ValueError, match="POLICYQA_MILVUS_INDEX='DISKANN': one of AUTO, FLAT, HNSW"):
        build_index(corpus(), tmp_path / "m", HashEmbedder(), progress=False, backend=f"{milvus.spec}/wrong")
    assert not (tmp_path / "m" / "manifest.json").exists()


def test_the_backend_benchmark_runs_and_reports_both_backends(tmp_path):
    """`python -m eval.bench_backends` end to end on a few questions with the fake embedder (its own milvus-lite):
    the report has both builds, both searches and the parity figures; no timing is asserted (a benchmark, not a test)."""
    env = {**os.environ, "POLICYQA_MODEL": "fake-hash-ngrams", "POLICYQA_DATA": str(tmp_path / "data")}
    res = subprocess.run([sys.executable, "-m", "eval.bench_backends", "--limit", "6", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path / "backends-corpus.json").read_text(encoding="utf-8"))
    assert [b["backend"] for b in report["builds"]] == ["embedded", "milvus"]
    assert report["search"]["questions"] == 6 and report["parity_within_0.02"] is True
    assert set(report["search_rss_mb"]) == {"embedded", "milvus"} and report["milvus_server_rss_mb_after_search"]
    assert "| milvus |" in (tmp_path / "backends-corpus.md").read_text(encoding="utf-8")


def test_the_backend_benchmark_times_an_unlabelled_corpus_with_load_queries(tmp_path):
    """``--load-queries`` (lawrefbook has no labelled questions): the questions only time the search; no metric is
    reported and the parity verdict is None rather than a vacuous 'met'."""
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps({"_id": f"q{i}", "text": t}, ensure_ascii=False)
                                 for i, t in enumerate(["医保异地结算", "铁路建设", "高铁旅游"])) + "\n", encoding="utf-8")
    env = {**os.environ, "POLICYQA_MODEL": "fake-hash-ngrams", "POLICYQA_DATA": str(tmp_path / "data")}
    res = subprocess.run([sys.executable, "-m", "eval.bench_backends", "--load-queries", str(queries), "--name", "load",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((tmp_path / "backends-load.json").read_text(encoding="utf-8"))
    assert report["search"]["questions"] == 3 and report["parity_within_0.02"] is None
    assert report["search"]["embedded"]["metrics"] == {} and report["search"]["identical_top10"] == 3
    assert "timing and top-10 agreement only" in (tmp_path / "backends-load.md").read_text(encoding="utf-8")


def test_an_index_type_the_server_refuses_fails_before_any_embedding(milvus, tmp_path, monkeypatch):
    """milvus-lite refuses HNSW (which AUTO picks above the HNSW threshold): the collection is created before the
    chunks are embedded, so the refusal comes at once, nothing was encoded, and no collection is left behind."""
    from pymilvus import MilvusClient

    monkeypatch.setenv("POLICYQA_MILVUS_INDEX", "HNSW")
    emb = _Counting()
    with pytest.raises(IndexStoreError) as err:
        build_index(corpus(), tmp_path / "m", emb, progress=False, backend=f"{milvus.spec}/refused")
    assert milvus.spec.split("//")[1] in str(err.value) and emb.encoded == 0
    assert not (tmp_path / "m" / "manifest.json").exists()
    assert not [c for c in MilvusClient(uri=f"http://127.0.0.1:{milvus.port}").list_collections()
                if c.startswith("refused")]


def test_a_failed_embedding_leaves_no_collection_and_the_old_index_in_place(milvus, tmp_path):
    emb = _Counting()
    build_index(corpus(), tmp_path / "m", emb, progress=False, backend=f"{milvus.spec}/failing")
    before = (tmp_path / "m" / "manifest.json").read_bytes()

    def out_of_memory(texts, progress=False):
        raise RuntimeError("the model ran out of memory")

    from dataclasses import replace

    from pymilvus import MilvusClient

    broken = _Counting()
    broken.encode_passages = out_of_memory
    client = MilvusClient(uri=f"http://127.0.0.1:{milvus.port}")
    kept = sorted(c for c in client.list_collections() if c.startswith("failing__"))
    with pytest.raises(RuntimeError, match="out of memory"):
        build_index([replace(d, title=d.title + "（修订）") for d in corpus()], tmp_path / "m", broken,
                    progress=False, backend=f"{milvus.spec}/failing")
    assert (tmp_path / "m" / "manifest.json").read_bytes() == before
    assert sorted(c for c in client.list_collections() if c.startswith("failing__")) == kept
    assert Searcher.load(tmp_path / "m", emb).query("医保异地结算", 3).hits
