"""`policyqa tune --queries … --qrels …`: train a query adapter on a collection's own labelled questions and attach it
(eval/tune.py), with the fake embedder; the learning itself is tested in test_quality.py (fit, pick)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fakes import HashEmbedder
from index.adapter import QueryAdapter
from index.search import Searcher
from index.store import build_index, read_manifest
from index_fixtures import corpus


@pytest.fixture
def ix(tmp_path):
    path = tmp_path / "ix"
    build_index(corpus(), path, HashEmbedder(), progress=False)
    return path


def labelled(tmp_path, ix, n: int = 12, known: bool = True):
    """n questions, each judged relevant to one provision of the index (or to an id the index does not have)."""
    chunks = Searcher.load(ix, HashEmbedder()).chunks
    queries, qrels = tmp_path / "q.jsonl", tmp_path / "qrels.tsv"
    picked = [chunks[i % len(chunks)] for i in range(n)]
    queries.write_text("".join(json.dumps({"id": f"q{i}", "query": c.text[:12]}, ensure_ascii=False) + "\n"
                               for i, c in enumerate(picked)), encoding="utf-8")
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\t{c.provision_id if known else 'nowhere#' + str(i)}\t1\n" for i, c in enumerate(picked)), "utf-8")
    return queries, qrels


def test_tune_trains_on_the_questions_and_attaches_the_adapter_with_its_record(ix, tmp_path, run_cli, monkeypatch):
    queries, qrels = labelled(tmp_path, ix)
    seen = {}
    dim = HashEmbedder().dim

    def train(qv, passages, positives, steps=200, log=print, **_):
        seen.update(n=len(qv), rows=[p.tolist() for p in positives], passages=len(passages))
        w = np.eye(dim, dtype=np.float32)[::-1].copy()  # any map that moves queries
        return {"weight": w, "tau": 0.02, "lr": 2e-4, "l2": 1e-3, "steps": 30, "curve": [(0, None, 0.2), (30, 1.0, 0.4)],
                "grid": [[0.02, 2e-4]], "fit_questions": 10, "early_stopping_mrr10": [0.2, 0.4]}

    monkeypatch.setattr("eval.adapter.train_adapter", train)
    code, out, err = run_cli("tune", "--index", str(ix), "--queries", str(queries), "--qrels", str(qrels))
    assert code == 0, err
    assert "已训练并挂接查询适配器" in out and "0.200 -> 0.400" in out and "query adapter query_adapter.npz" in out
    chunks = Searcher.load(ix, HashEmbedder()).chunks
    assert seen["n"] == 12 and seen["passages"] == len(chunks)
    assert all(chunks[r[0]].provision_id == chunks[i % len(chunks)].provision_id for i, r in enumerate(seen["rows"]))
    manifest = read_manifest(ix)
    assert manifest.query.adapter == "query_adapter.npz" and manifest.query.adapter_fusion is None  # the index's fusion
    header = QueryAdapter.read(ix / "query_adapter.npz").meta
    assert header["questions"] == 12 and header["level"] == "provision" and len(header["queries_sha256"]) == 64
    assert header["trained_by"] == "policyqa tune --queries --qrels"
    s = Searcher.load(ix, HashEmbedder())
    assert not np.allclose(s.query_vector("医保结算"), s.embedder.encode_queries(["医保结算"])[0])  # it applies


def test_tune_leaves_the_index_alone_when_the_adapter_does_not_beat_the_model(ix, tmp_path, run_cli, monkeypatch):
    queries, qrels = labelled(tmp_path, ix)
    monkeypatch.setattr("eval.adapter.train_adapter", lambda *a, **k: None)
    before = (ix / "manifest.json").read_bytes()
    code, out, err = run_cli("tune", "--index", str(ix), "--queries", str(queries), "--qrels", str(qrels))
    assert code == 1 and "未调优" in err and "nothing attached" in err
    assert (ix / "manifest.json").read_bytes() == before and not (ix / "query_adapter.npz").exists()


def test_tune_says_how_many_judged_items_are_missing_from_the_index(ix, tmp_path, run_cli):
    queries, qrels = labelled(tmp_path, ix, known=False)
    code, out, err = run_cli("tune", "--index", str(ix), "--queries", str(queries), "--qrels", str(qrels))
    assert code == 1 and "only 0 questions" in err and "for 12 judged questions none of their items is in it" in err
    assert read_manifest(ix).query.adapter is None


def test_tune_takes_exactly_one_way(ix, tmp_path, run_cli):
    queries, qrels = labelled(tmp_path, ix)
    for args in ([], ["--remove", "--queries", str(queries), "--qrels", str(qrels)], ["--queries", str(queries)],
                 ["--adapter", str(tmp_path / "a.npz"), "--qrels", str(qrels)], ["--remove", "--w-dense", "0.5"]):
        code, out, err = run_cli("tune", "--index", str(ix), *args)
        assert code == 2 and "--queries" in err, args
    assert read_manifest(ix).query.adapter is None
