"""Quality features: BM25 query coverage, abstention on weak evidence, the learned query adapter, BEIR tune/heldout halves."""
from __future__ import annotations

import json

import numpy as np
import pytest

import index.search as search_mod
from eval.adapter import dense_mrr, fit
from eval.beir import load_beir, tune_cut
from fakes import HashEmbedder
from index.adapter import QueryAdapter, adapter_filename, load_adapter
from index.lexical import LexicalIndex
from index.search import REASON_WEAK, Searcher
from index.store import build_index
from index.tokenize import ChineseTokenizer
from index_fixtures import corpus


@pytest.fixture(scope="module")
def searcher(tmp_path_factory) -> Searcher:
    ix = tmp_path_factory.mktemp("quality") / "ix"
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    return Searcher.load(ix, HashEmbedder())


def test_coverage_weighs_words_by_rarity_and_counts_unknown_words():
    lex = LexicalIndex.build(["医保 异地 结算 办法", "医保 缴费 标准", "高铁 建设"], ChineseTokenizer(with_policy_terms=False))
    rows = np.arange(3)
    full = lex.coverage("医保异地结算", rows)
    assert full[0] == pytest.approx(1.0) and 0 < full[1] < 0.5 and full[2] == 0
    # a word the index has never seen weighs the most and is matched nowhere
    assert lex.coverage("海南医保", rows)[1] < 0.5
    assert lex.coverage("的", rows).tolist() == [0, 0, 0]  # stopwords only: nothing to cover
    assert lex.coverage("医保", np.zeros(0, np.int64)).shape == (0,)


def test_abstains_on_weak_evidence_only_with_thresholds_for_the_model(searcher, monkeypatch):
    assert searcher.abstain_thresholds() is None  # no entry for the fake model: never abstains
    assert searcher.query("海南离岛免税购物额度", k=5).hits
    monkeypatch.setitem(search_mod.ABSTAIN, HashEmbedder.name, {"cos": 2.0, "cover": 0.5})  # any cosine is "low"
    weak = searcher.query("海南离岛免税购物额度", k=5)
    assert weak.hits == () and weak.reason == REASON_WEAK
    assert searcher.query("哪些条款涉及医保异地结算", k=5).hits  # the words are there: answered
    assert searcher.query("海南离岛免税购物额度", k=5, mode="dense").hits  # only hybrid abstains
    assert not searcher._weak("duty-free shopping quota in Hainan", 0.0, [searcher.chunks[0].id])
    assert searcher.with_settings(abstain=False).query("海南离岛免税购物额度", k=5).hits


def test_adapter_round_trip_and_identity(tmp_path):
    w = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32) * 0.1
    path = QueryAdapter("m:x", w, {"steps": 3}).save(tmp_path / adapter_filename("m:x"))
    back = QueryAdapter.read(path)
    assert back.model == "m:x" and back.meta == {"steps": 3} and np.allclose(back.weight, w, atol=1e-3)
    q = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    assert np.allclose(QueryAdapter("m", np.zeros((8, 8), np.float32), {}).apply(q), q, atol=1e-6)
    assert np.allclose(np.linalg.norm(back.apply(q), axis=1), 1.0, atol=1e-5)
    assert load_adapter("no-such-model", 8) is None


def test_searcher_applies_a_bundled_adapter_unless_switched_off(searcher, monkeypatch, tmp_path):
    dim = HashEmbedder().dim
    w = np.random.default_rng(2).standard_normal((dim, dim)).astype(np.float32)
    path = QueryAdapter(HashEmbedder.name, w, {}).save(tmp_path / "a.npz")
    monkeypatch.setattr("index.adapter.bundled_path", lambda name: path)
    fresh = searcher.with_settings()
    fresh._adapter = None
    plain = searcher.embedder.encode_queries(["医保结算"])[0]
    adapted = fresh.query_vector("医保结算")
    assert not np.allclose(adapted, plain) and np.allclose(adapted, QueryAdapter.read(path).apply(plain), atol=1e-5)
    off = fresh.with_settings(query_adapter=False)
    assert np.allclose(off.query_vector("医保结算"), plain)
    # abstention reads the model's own cosine scale: the best cosine of the unadapted vector
    best = fresh._rank("医保结算", "hybrid", 10, None)[2]
    assert best == pytest.approx(float((fresh._ix.vectors @ plain).max()), abs=1e-5)
    assert fresh._fusion_weights() == (searcher.settings.w_dense, searcher.settings.w_bm25)
    tuned = QueryAdapter(HashEmbedder.name, w, {"fusion": {"w_dense": 0.9, "w_bm25": 0.1}}).save(tmp_path / "c.npz")
    monkeypatch.setattr("index.adapter.bundled_path", lambda name: tuned)
    with_fusion = searcher.with_settings()
    with_fusion._adapter = None
    with_fusion.query_vector("医保结算")
    assert with_fusion._fusion_weights() == (0.9, 0.1)
    assert with_fusion.with_settings(query_adapter=False)._fusion_weights() == (searcher.settings.w_dense,
                                                                               searcher.settings.w_bm25)
    # an adapter trained for another corpus is not applied to this one
    other = QueryAdapter(HashEmbedder.name, w, {"index_corpus_sha256": "another corpus"}).save(tmp_path / "b.npz")
    monkeypatch.setattr("index.adapter.bundled_path", lambda name: other)
    scoped = searcher.with_settings()
    scoped._adapter = None
    assert np.allclose(scoped.query_vector("医保结算"), plain)


def test_fit_learns_a_map_that_ranks_the_positives_higher():
    rng = np.random.default_rng(0)
    passages = rng.standard_normal((400, 16)).astype(np.float32)
    passages /= np.linalg.norm(passages, axis=1, keepdims=True)
    rot = np.linalg.qr(rng.standard_normal((16, 16)))[0].astype(np.float32)
    positives = [np.array([i]) for i in range(120)]
    queries = passages[:120] @ rot  # questions live in a rotated space: plain dense search is poor
    before = dense_mrr(queries[100:], passages, positives[100:])
    w, curve = fit(queries[:100], passages, positives[:100], 60, tau=0.1, l2=0.0, lr=0.05, k=32,
                   val=(queries[100:], positives[100:]), every=20)
    after = dense_mrr(QueryAdapter("t", w, {}).apply(queries[100:]), passages, positives[100:])
    assert after > before + 0.2 and [c[0] for c in curve] == [0, 20, 40, 60]


def test_beir_halves_label_tune_then_heldout(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "title": "t", "text": f"文本{i}"}) + "\n" for i in range(5)), "utf-8")
    (tmp_path / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": f"问题{i}"}) + "\n" for i in range(5)), "utf-8")
    (tmp_path / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(5)), "utf-8")
    data = load_beir(tmp_path, halves=True)
    assert [q.split for q in data.questions] == ["tune"] * tune_cut(5) + ["heldout"] * (5 - tune_cut(5))
    assert tune_cut(5) == 3 and tune_cut(1235) == 618
    assert {q.split for q in load_beir(tmp_path).questions} == {"train"}


def test_compact_trims_per_question_rows_until_the_report_fits():
    from eval.report import _dump, compact

    row = {"id": "q", "split": "dev", "kind": "k", "query": "问" * 50, "gold": ["g"], "top": [f"p{i}" for i in range(10)],
           "top_scores": [0.5] * 10, "first_relevant_rank": 2, "n_hits": 10, "ms": 1.0, "recall@5": 0.0}
    run = {"splits": {"dev": {"overall": {"recall@5": 0.5}}}, "per_question": [dict(row, id=f"q{i}") for i in range(300)]}
    result = {"name": "x", "runs": {"bm25": run, "hybrid": run}}
    assert compact(result, limit=10**9) is result
    small = compact(result, limit=60_000)
    assert len(_dump(small).encode()) <= 60_000 and small["trimmed"]
    assert small["runs"]["hybrid"]["splits"] == run["splits"]  # metrics are never cut
    assert small["runs"]["hybrid"]["per_question"][0]["first_relevant_rank"] == 2
