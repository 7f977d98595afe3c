"""Quality features: BM25 query coverage, abstention on weak evidence, the learned query adapter, BEIR tune/heldout halves."""
from __future__ import annotations

import json

import numpy as np
import pytest

from eval.adapter import dense_mrr, fit, pick
from eval.beir import load_beir, tune_cut
from fakes import HashEmbedder
from index.adapter import QueryAdapter, adapter_filename
from index.lexical import LexicalIndex
from index.search import REASON_WEAK, Searcher
from index.store import IndexMismatchError, attach_adapter, build_index, read_manifest
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


def test_abstains_on_weak_evidence_only_with_thresholds_in_the_manifest(searcher, tmp_path):
    assert searcher.abstain_thresholds() is None  # the fake model records none: never abstains
    assert searcher.query("海南离岛免税购物额度", k=5).hits
    strict = HashEmbedder()
    strict.abstain_thresholds = {"cos": 2.0, "cover": 0.5}  # any cosine is "low"
    build_index(corpus(), tmp_path / "ix", strict, progress=False)
    assert dict(read_manifest(tmp_path / "ix").query.abstain) == {"cos": 2.0, "cover": 0.5}
    s = Searcher.load(tmp_path / "ix", HashEmbedder())  # thresholds come from the index, not from the model object
    weak = s.query("海南离岛免税购物额度", k=5)
    assert weak.hits == () and weak.reason == REASON_WEAK
    assert s.query("哪些条款涉及医保异地结算", k=5).hits  # the words are there: answered
    assert s.query("海南离岛免税购物额度", k=5, mode="dense").hits  # only hybrid abstains
    assert not s._weak("duty-free shopping quota in Hainan", 0.0, [s.chunks[0].id])
    assert s.with_settings(abstain=False).query("海南离岛免税购物额度", k=5).hits


def test_adapter_round_trip_and_identity(tmp_path):
    w = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32) * 0.1
    path = QueryAdapter("m:x", w, {"steps": 3}).save(tmp_path / adapter_filename("m:x"))
    back = QueryAdapter.read(path)
    assert back.model == "m:x" and back.meta == {"steps": 3} and np.allclose(back.weight, w, atol=1e-3)
    q = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    assert np.allclose(QueryAdapter("m", np.zeros((8, 8), np.float32), {}).apply(q), q, atol=1e-6)
    assert np.allclose(np.linalg.norm(back.apply(q), axis=1), 1.0, atol=1e-5)


def test_an_adapter_applies_only_where_policyqa_tune_attached_it(tmp_path):
    ix = tmp_path / "ix"
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    plain_searcher = Searcher.load(ix, HashEmbedder())
    plain = plain_searcher.embedder.encode_queries(["医保结算"])[0]
    assert np.allclose(plain_searcher.query_vector("医保结算"), plain)  # nothing attached: queries unchanged
    dim = HashEmbedder().dim
    w = np.random.default_rng(2).standard_normal((dim, dim)).astype(np.float32)
    path = QueryAdapter(HashEmbedder.name, w, {"fusion": {"w_dense": 0.9, "w_bm25": 0.1}}).save(tmp_path / "a.npz")
    manifest = attach_adapter(ix, path)
    assert manifest.query.adapter == "query_adapter.npz" and (ix / "query_adapter.npz").is_file()
    tuned = Searcher.load(ix, HashEmbedder())
    adapted = tuned.query_vector("医保结算")
    assert not np.allclose(adapted, plain) and np.allclose(adapted, QueryAdapter.read(path).apply(plain), atol=1e-5)
    assert tuned._fusion_weights() == (0.9, 0.1)
    off = tuned.with_settings(query_adapter=False)
    assert np.allclose(off.query_vector("医保结算"), plain)
    assert off._fusion_weights() == (tuned.settings.w_dense, tuned.settings.w_bm25)
    # abstention reads the model's own cosine scale: the best cosine of the unadapted vector
    best = tuned._rank("医保结算", "hybrid", 10, None)[2]
    assert best == pytest.approx(float((tuned._ix.vectors @ plain).max()), abs=1e-5)
    # a rebuild of the same index keeps what was attached; an adapter of another model is refused
    build_index(corpus()[:-1], ix, HashEmbedder(), progress=False)
    assert Searcher.load(ix, HashEmbedder())._ix.adapter is not None
    other = QueryAdapter("another-model", w, {}).save(tmp_path / "b.npz")
    with pytest.raises(IndexMismatchError, match="another-model"):
        attach_adapter(ix, other)
    assert attach_adapter(ix, None).query.adapter is None and not (ix / "query_adapter.npz").exists()
    assert np.allclose(Searcher.load(ix, HashEmbedder()).query_vector("医保结算"), plain)


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


def test_pick_takes_the_best_setting_and_step_and_refuses_when_nothing_beats_no_adapter():
    # the curves of fit(): (step, loss, early-stopping MRR@10), step 0 = no adapter
    overfits = [(0, None, 0.40), (10, 2.7, 0.39), (20, 2.0, 0.35)]
    gentle = [(0, None, 0.40), (10, 2.9, 0.43), (20, 2.5, 0.47), (30, 2.2, 0.47), (40, 2.0, 0.45)]
    assert pick({(0.05, 2e-3): overfits, (0.02, 2e-4): gentle}) == (0.02, 2e-4, 20, 0.47)
    assert pick({(0.05, 2e-3): overfits}) is None
    assert pick({(0.05, 2e-3): [(0, None, 0.4), (10, 1.0, 0.4)]}) is None  # a tie with no adapter is not a gain


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
