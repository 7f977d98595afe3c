"""A relevance stage that reads each candidate's best sentence (index.sentences): the build puts the chunks' sentence
vectors into the index's stage folder (reusing an earlier build's for unchanged chunks), the searcher reads them, and
the product computes the same sentence features as the training side."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fakes import HashEmbedder
from index.relevance import ALL_FEATURES, FEATURES, SENTENCE_FEATURES, SENTENCE_STARTS, SENTENCE_VECTORS
from index.search import Searcher
from index.sentences import SentenceVectors, sentences_of
from index.store import build_index, read_manifest
from index_fixtures import corpus, make_document

QUESTION = "哪些条款涉及医保异地结算"


def _stage(folder):
    """P(relevant) = sigmoid(8·sent + 2·gap_sent − 5): a linear stage over the sentence features."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = [0.0] * len(ALL_FEATURES)
    weights[ALL_FEATURES.index("sent")] = 8.0
    weights[ALL_FEATURES.index("gap_sent")] = 2.0
    spec = {"model": "linear", "features": list(ALL_FEATURES), "weights": weights, "bias": -5.0, "threshold": 0.3,
            "top_n": 10, "calibration": {"kind": "platt", "a": 1.0, "b": 0.0}}
    (folder / "stage.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


class CountingEmbedder(HashEmbedder):
    """Counts the passages it encodes."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.passages = 0

    def encode_passages(self, texts, progress=False):
        self.passages += len(texts)
        return super().encode_passages(texts, progress)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentstage")
    emb = CountingEmbedder()
    emb.relevance_dir = _stage(root / "stage")
    build_index(corpus(), root / "ix", emb, progress=False)
    return root, emb


def test_the_build_stores_every_chunks_sentence_vectors_in_the_stage_folder_and_records_them(built):
    root, emb = built
    m = read_manifest(root / "ix")
    assert {f"relevance/{SENTENCE_VECTORS}", f"relevance/{SENTENCE_STARTS}"} <= set(m.files)
    s = Searcher.load(root / "ix")
    sv = s.relevance_stage().sentences
    texts = [c.text for c in s.chunks]
    assert sv.chunks == len(texts)
    direct = SentenceVectors.encode(texts, HashEmbedder().encode_passages)
    assert np.array_equal(sv.starts, direct.starts)
    assert np.allclose(np.asarray(sv.vectors, np.float32), np.asarray(direct.vectors, np.float32), atol=1e-3)
    assert all(sv.starts[i + 1] - sv.starts[i] == len(sentences_of(t)) for i, t in enumerate(texts))


def test_a_search_reads_each_candidates_best_sentence(built):
    root, _ = built
    s = Searcher.load(root / "ix")
    seen = {}
    original = s._sentence_cosines

    def spy(stage, qvec, rows):
        out = original(stage, qvec, rows)
        seen["rows"], seen["q"], seen["out"] = rows, qvec, out
        return out

    s._sentence_cosines = spy
    resp = s.query(QUESTION, k=5)
    assert resp.hits and all(0.0 <= h.relevance <= 1.0 for h in resp.hits)
    q = np.asarray(seen["q"], np.float32)
    for r, got in zip(seen["rows"], seen["out"]):
        sents = sentences_of(s.chunks[int(r)].text)
        want = max(float(v @ q) for v in HashEmbedder().encode_passages(sents))
        assert got == pytest.approx(want, abs=2e-3)


def test_an_unchanged_corpus_is_not_rebuilt_and_a_changed_one_reuses_unchanged_chunks_sentences(built):
    root, emb = built
    before = read_manifest(root / "ix")
    emb.passages = 0
    build_index(corpus(), root / "ix", emb, progress=False)
    assert emb.passages == 0 and read_manifest(root / "ix") == before
    docs = corpus() + [make_document("new", "新增文件", [(("第一条",), "新增一条关于住房公积金异地转移接续的规定，便于职工流动。")])]
    build_index(docs, root / "ix", emb, progress=False)
    new_chunks = [c for c in Searcher.load(root / "ix").chunks if c.doc_id == "new"]
    sentences = sum(len(sentences_of(c.text)) for c in new_chunks)
    assert emb.passages == len(new_chunks) + sentences  # the new chunks and their sentences only


def test_the_product_and_the_training_side_compute_the_same_sentence_features():
    from eval.relevance import scoring
    from index.relevance import Evidence, features

    rng = np.random.default_rng(0)
    n = 7
    cos, sent = rng.uniform(0.3, 0.8, n), rng.uniform(0.3, 0.9, n)
    ev = Evidence(query="q", fused=cos, cos=cos, bm25=np.zeros(n), coverage=np.zeros(n), titles=("",) * n,
                  paths=("",) * n, texts=("x",) * n, doc_ids=tuple("abcdefg"), pieces=(False,) * n, idf={},
                  unknown_idf=0.0, n_tokens=1, sent=sent)
    sig = scoring.Signals(query="q", fused=cos, cos=cos, bm25=np.zeros(n), coverage=np.zeros(n),
                          title_cov=np.zeros(n), path_cov=np.zeros(n), bigram=np.zeros(n), text_len=np.ones(n),
                          same_doc=np.ones(n), doc_first_rank=np.arange(n, dtype=float), piece=np.zeros(n), q_tokens=1,
                          q_chars=1, q_unknown=0.0, cjk=0, q_quantity=0.0, num=np.zeros(n), sent=sent)
    assert scoring.FEATURES == FEATURES
    mine, theirs = features(ev, SENTENCE_FEATURES), scoring.features(sig, SENTENCE_FEATURES)
    assert np.allclose(mine, theirs)
    assert mine[:, 0].tolist() == sent.tolist() and mine[:, 4] == pytest.approx(sent - cos)
    with pytest.raises(ValueError, match="sentence"):
        features(Evidence(**{**ev.__dict__, "sent": None}), SENTENCE_FEATURES)


def test_another_models_sentence_vectors_are_never_reused(tmp_path):
    first = CountingEmbedder()
    first.relevance_dir = _stage(tmp_path / "stage")
    build_index(corpus(), tmp_path / "ix", first, progress=False)
    other = CountingEmbedder(dim=32)  # another model: another dimension, its own vectors
    other.relevance_dir = first.relevance_dir
    build_index(corpus(), tmp_path / "ix", other, progress=False)
    s = Searcher.load(tmp_path / "ix", other)
    assert s.relevance_stage().sentences.vectors.shape == (other.passages - len(s.chunks), 32)
