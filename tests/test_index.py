"""Index store: manifest, save/load round trip, incremental reuse, mismatch and corruption errors, the build lock."""
from __future__ import annotations

import json
import threading
from dataclasses import asdict, replace

import numpy as np
import pytest

from fakes import HashEmbedder
from index.search import Searcher
from index.store import (
    BuildSettings,
    QuerySettings,
    IndexCorruptError,
    IndexLockedError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexSettings,
    build_index,
    index_lock,
    read_documents,
    read_manifest,
)
from index_fixtures import corpus, make_document

QUERIES = ["哪些条款涉及医保异地结算", "张吉怀高铁", "哪些條款涉及醫保異地結算", "产业合作园区"]


class CountingEmbedder(HashEmbedder):
    """The fake embedder, counting how many passages it was asked to encode."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.encoded = 0

    def encode_passages(self, texts, progress=False):
        self.encoded += len(texts)
        return super().encode_passages(texts, progress)


def _results(searcher, mode="hybrid"):
    return [[(h.chunk_id, round(h.score, 5)) for h in searcher.search(q, 5, mode=mode)] for q in QUERIES]


def test_manifest_records_model_tokenizer_chunker_and_counts(tmp_path):
    m = build_index(corpus(), tmp_path / "ix", HashEmbedder(), progress=False)
    manifest = read_manifest(tmp_path / "ix")
    assert manifest == m.manifest  # the typed manifest reads back equal to what was written
    data = manifest.build
    assert asdict(data.model) == {"name": "fake-hash-ngrams", "dim": 64, "query_prompt": "query: ",
                                  "passage_prompt": "passage: ", "max_tokens": 512, "passage_precision": None}
    assert len(data.tokenizer["dictionary_sha256"]) == 64 and data.chunker["max_tokens"] == 512
    assert data.counts["documents"] == 5 and data.counts["chunks"] == 14
    assert data.dense["type"] == "flat" and data.versions["faiss"]
    assert {"documents.jsonl", "chunks.jsonl", "vectors.npy", "dense.faiss"} <= set(manifest.files)
    # the JSON has the two sections; the query section holds what a search uses besides the files
    raw = json.loads((tmp_path / "ix" / "manifest.json").read_text(encoding="utf-8"))
    assert set(raw) == {"schema_version", "build", "query", "files", "file_sha256", "manifest_sha256"}
    assert raw["query"] == {"settings": asdict(QuerySettings()), "abstain": None, "adapter": None,
                            "adapter_fusion": None, "relevance": None}
    assert raw["build"]["settings"] == asdict(BuildSettings())
    assert m.counts["embedded"] == 14
    vectors = np.load(tmp_path / "ix" / "vectors.npy", allow_pickle=False)
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert not list(tmp_path.glob(".ix.*"))  # no temporary directory left behind


def test_documents_round_trip(tmp_path):
    build_index(corpus(), tmp_path / "ix", HashEmbedder(), progress=False)
    assert read_documents(tmp_path / "ix") == {d.id: d for d in corpus()}


def test_search_results_identical_after_load(tmp_path):
    emb = HashEmbedder()
    build_index(corpus(), tmp_path / "a", emb, progress=False)
    first = Searcher.load(tmp_path / "a", emb)
    build_index(corpus(), tmp_path / "b", emb, progress=False)  # an independent build of the same corpus
    second = Searcher.load(tmp_path / "b", HashEmbedder())
    for mode in ("hybrid", "dense", "bm25"):
        assert _results(first, mode) == _results(second, mode)
        assert _results(first, mode)[0]  # not vacuous


def test_hnsw_index_used_above_threshold_and_round_trips(tmp_path):
    settings = IndexSettings.of(hnsw_threshold=5)
    build_index(corpus(), tmp_path / "ix", HashEmbedder(), settings, progress=False)
    assert read_manifest(tmp_path / "ix").build.dense["type"] == "hnsw"
    s = Searcher.load(tmp_path / "ix", HashEmbedder())
    assert s._ix.dense.kind == "hnsw" and s.search("张吉怀高铁", 1, mode="dense")[0].doc_id in ("gba", "gba_html")


def test_unchanged_corpus_embeds_nothing(tmp_path):
    emb = CountingEmbedder()
    build_index(corpus(), tmp_path / "ix", emb, progress=False)
    assert emb.encoded == 14
    again = build_index(corpus(), tmp_path / "ix", emb, progress=False)
    assert emb.encoded == 14 and again.unchanged and again.counts["embedded"] == 0


def test_changed_and_removed_documents_reuse_other_vectors(tmp_path):
    emb = CountingEmbedder()
    docs = corpus()
    build_index(docs, tmp_path / "ix", emb, progress=False)
    changed = make_document("czt", docs[1].title, [(("三、公共服务一体化",), "推进长株潭三市公积金互认互贷。")])
    new_docs = [docs[0], changed, docs[2]]  # czt changed, gba_html and law removed
    emb.encoded = 0
    m = build_index(new_docs, tmp_path / "ix", emb, progress=False)
    assert emb.encoded == 1 and m.reused == len(docs[0].provisions) + len(docs[2].provisions)
    s = Searcher.load(tmp_path / "ix", emb)
    assert set(s.documents) == {"gba", "czt", "px"}
    assert s.search("公积金互认互贷", 1)[0].doc_id == "czt"
    # reused vectors are the ones a fresh build computes
    build_index(new_docs, tmp_path / "fresh", HashEmbedder(), progress=False)
    assert np.allclose(np.load(tmp_path / "ix" / "vectors.npy"), np.load(tmp_path / "fresh" / "vectors.npy"))


def test_manifest_records_passage_precision_and_a_precision_change_reuses_vectors(tmp_path):
    bf16, fp32 = CountingEmbedder(), CountingEmbedder()
    bf16.precision, fp32.precision = "bf16", "fp32"
    docs = corpus()
    build_index(docs, tmp_path / "ix", bf16, progress=False)
    assert read_manifest(tmp_path / "ix").build.model.passage_precision == "bf16"
    # documented decision: precision is not part of the build fingerprint, so an unchanged corpus stays as built
    m = build_index(docs, tmp_path / "ix", fp32, progress=False)
    assert m.unchanged and fp32.encoded == 0 and m.manifest.build.model.passage_precision == "bf16"
    # only the changed chunk is encoded in fp32: the manifest says the vectors are mixed
    changed = make_document("czt", docs[1].title, [(("三、公共服务一体化",), "推进长株潭三市公积金互认互贷。")])
    m = build_index([docs[0], changed, *docs[2:]], tmp_path / "ix", fp32, progress=False)
    assert fp32.encoded == 1 and m.manifest.build.model.passage_precision == "mixed"
    # a fresh build is uniform again
    m = build_index(docs, tmp_path / "fresh", fp32, progress=False)
    assert m.manifest.build.model.passage_precision == "fp32"


def test_query_time_setting_change_needs_no_rebuild(tmp_path):
    emb = CountingEmbedder()
    build_index(corpus(), tmp_path / "ix", emb, progress=False)
    m = build_index(corpus(), tmp_path / "ix", emb, IndexSettings.of(w_dense=0.5, w_bm25=0.5), progress=False)
    assert m.unchanged and emb.encoded == 14
    assert Searcher.load(tmp_path / "ix", emb).settings.w_dense == 0.5


def test_missing_index_is_a_clear_error(tmp_path):
    with pytest.raises(IndexNotFoundError, match="policyqa ingest"):
        Searcher.load(tmp_path / "nowhere", HashEmbedder())


def test_other_model_is_refused(tmp_path):
    build_index(corpus(), tmp_path / "ix", HashEmbedder(), progress=False)
    with pytest.raises(IndexMismatchError, match="policyqa ingest"):
        Searcher.load(tmp_path / "ix", HashEmbedder(dim=32))
    other = HashEmbedder()
    other.name = "another-model"
    with pytest.raises(IndexMismatchError, match="another-model"):
        Searcher.load(tmp_path / "ix", other)


def test_other_schema_is_refused(tmp_path):
    build_index(corpus(), tmp_path / "ix", HashEmbedder(), progress=False)
    path = tmp_path / "ix" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 0}))
    with pytest.raises(IndexMismatchError, match="schema version 0"):
        Searcher.load(tmp_path / "ix", HashEmbedder())


@pytest.mark.parametrize("name", ["chunks.jsonl", "vectors.npy", "dense.faiss", "documents.jsonl",
                                  "bm25/userdict.txt", "bm25/data.csc.index.npy"])
def test_truncated_file_is_a_clear_error(tmp_path, name):
    build_index(corpus(), tmp_path / "ix", HashEmbedder(), progress=False)
    path = tmp_path / "ix" / name
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(IndexCorruptError, match=name):
        Searcher.load(tmp_path / "ix", HashEmbedder())


def test_garbled_manifest_is_a_clear_error(tmp_path):
    build_index(corpus(), tmp_path / "ix", HashEmbedder(), progress=False)
    (tmp_path / "ix" / "manifest.json").write_text("{not json")
    with pytest.raises(IndexCorruptError, match="manifest.json"):
        Searcher.load(tmp_path / "ix", HashEmbedder())


def test_second_build_waits_then_fails_while_locked(tmp_path):
    ix = tmp_path / "ix"
    with index_lock(ix):
        with pytest.raises(IndexLockedError, match="another build"):
            build_index(corpus(), ix, HashEmbedder(), progress=False, lock_timeout=0.3)
    build_index(corpus(), ix, HashEmbedder(), progress=False, lock_timeout=0.3)  # free again


def test_lock_is_released_to_a_waiting_build(tmp_path):
    ix = tmp_path / "ix"
    held = threading.Event()

    def hold():
        with index_lock(ix):
            held.set()
            threading.Event().wait(0.3)

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    build_index(corpus(), ix, HashEmbedder(), progress=False, lock_timeout=5)
    t.join()
    assert read_manifest(ix).build.counts["documents"] == 5


def test_failed_build_leaves_the_old_index_intact(tmp_path):
    ix = tmp_path / "ix"
    build_index(corpus(), ix, HashEmbedder(), progress=False)

    class Broken(HashEmbedder):
        def encode_passages(self, texts, progress=False):
            raise RuntimeError("model crashed")

    with pytest.raises(RuntimeError):
        build_index(corpus()[:2] + [replace(corpus()[2], title="新标题")], ix, Broken(), progress=False)
    assert Searcher.load(ix, HashEmbedder()).search("张吉怀高铁", 1)
    assert not list(tmp_path.glob(".ix.*"))


def test_duplicate_document_ids_rejected(tmp_path):
    with pytest.raises(ValueError, match="duplicate document id"):
        build_index(corpus() + corpus()[:1], tmp_path / "ix", HashEmbedder(), progress=False)


def test_unchanged_corpus_over_a_damaged_index_is_rebuilt(tmp_path):
    emb = CountingEmbedder()
    build_index(corpus(), tmp_path / "ix", emb, progress=False)
    (tmp_path / "ix" / "dense.faiss").write_bytes(b"")
    m = build_index(corpus(), tmp_path / "ix", emb, progress=False)
    assert not m.unchanged and m.reused == 14  # vectors.npy was intact, so nothing is re-embedded
    assert Searcher.load(tmp_path / "ix", emb).search("张吉怀高铁", 1)
