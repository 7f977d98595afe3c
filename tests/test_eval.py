"""The question set, anchor resolution, qrels/BEIR loading, the runner and the report writer."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from eval.beir import beir_index_dir, load_beir
from eval.questions import (
    Gold, Question, load_qrels, load_queries, load_questions, normalize_anchor, qrels_level,
    resolve_gold,
)
from eval.report import write_report
from eval.run import MODES, calibrate, evaluate, run_ablations
from index.types import Document, Hit, Provision, Source

ROOT = Path(__file__).resolve().parent.parent
KINDS = {"keyword", "paraphrase", "fact", "multi_doc", "traditional", "english", "colloquial", "out_of_corpus"}


# ---------------------------------------------------------------- the question set
def test_question_set_shape():
    qs = load_questions()
    assert len(qs) >= 90
    assert len({q.id for q in qs}) == len(qs)
    kinds = Counter(q.kind for q in qs)
    assert set(kinds) == KINDS and min(kinds.values()) >= 8
    for kind in KINDS:  # fixed split, stratified by kind
        c = Counter(q.split for q in qs if q.kind == kind)
        assert set(c) == {"dev", "test"} and abs(c["dev"] - c["test"]) <= 1, kind
    for q in qs:
        assert (q.kind == "out_of_corpus") == (not q.gold), q.id
    assert all(len({g.doc for g in q.gold}) >= 2 for q in qs if q.kind == "multi_doc")


def test_anchors_are_verbatim_and_short():
    texts = {p.stem: p.read_text(encoding="utf-8") for p in (ROOT / "corpus").glob("*.txt")}
    for q in load_questions():
        for g in q.gold:
            assert 8 <= len(g.anchor) <= 30, (q.id, g.anchor)
            assert g.anchor in texts[g.doc], (q.id, g.doc, g.anchor)


def test_medical_settlement_question_in_three_forms():
    by_query = {q.query: q for q in load_questions()}
    docs = {"000_f620c4800d4537e4", "003_52071bc060105621", "004_5bed96e789233213"}
    simplified = by_query["哪些条款涉及医保异地结算"]
    assert {g.doc for g in simplified.gold} == docs
    traditional = by_query["哪些條款涉及醫保異地結算"]
    english = [q for q in load_questions() if q.kind == "english" and "medical insurance" in q.query]
    assert traditional.gold == simplified.gold and english and english[0].gold == simplified.gold


# ---------------------------------------------------------------- anchor resolution
def _doc(doc_id: str, texts: list[str], sources: tuple[str, ...] = ()) -> Document:
    provs, text, pos = [], "", 0
    for i, t in enumerate(texts):
        provs.append(Provision(f"{doc_id}#{i}", doc_id, (), t, pos, pos + len(t)))
        text += t + "\n"
        pos = len(text)
    srcs = tuple(Source(p, "txt", "0" * 64) for p in sources) or (Source(f"{doc_id}.txt", "txt", "0" * 64),)
    return Document(doc_id, "t", text, tuple(provs), srcs)


def test_resolution_folds_whitespace_and_width_and_follows_merged_sources():
    # a PDF-style rendering: hard line break inside the anchor and full-width digits/brackets
    merged = _doc("000_web", ["18．强化医疗卫生合作。实现异地就医即时\n结算并报销医保费用。", "其他条款（２０２０）"],
                  sources=("000_web.html", "sub/001_pdf.pdf"))
    other = _doc("004_x", ["积极推进我市与粤港澳大湾区医保结算系统平台互联互通。"])
    qs = [
        Question("q1", "医保", gold=(Gold("001_pdf", "实现异地就医即时结算"), Gold("004_x", "医保结算系统平台互联互通"))),
        Question("q2", "年份", gold=(Gold("000_web", "其他条款(2020)"),)),
        Question("q3", "缺失", gold=(Gold("000_web", "不存在的锚点文本"), Gold("nope", "实现异地就医即时结算"))),
        Question("q4", "无答案"),
    ]
    res = resolve_gold(qs, {d.id: d for d in (merged, other)})
    assert res.qrels["q1"] == {"000_web#0": 1, "004_x#0": 1}
    assert res.qrels["q2"] == {"000_web#1": 1}
    assert res.qrels["q3"] == {} and res.qrels["q4"] == {}
    assert [u[1] for u in res.unresolved] == ["000_web", "nope"]
    assert normalize_anchor("３—５ 小时\n便捷") == "3—5小时便捷"


def test_every_anchor_resolves_against_the_real_parser(corpus_dir):
    from index import ingest
    result = ingest.load_documents(sorted(corpus_dir.glob("*.txt")), progress=False)
    res = resolve_gold(load_questions(), result.documents)
    assert res.unresolved == (), res.unresolved
    # an anchor should pin a provision, not half a document
    sizes = [len(rel) for rel in res.qrels.values() if rel]
    assert max(sizes) <= 6


def test_file_provision_ids_match_resolution(corpus_dir):
    from index import ingest
    result = ingest.load_documents(sorted(corpus_dir.glob("*.txt")), progress=False)
    qs = load_questions()
    res = resolve_gold(qs, result.documents)
    for q in qs:
        for g in q.gold:
            if g.provision_id is not None:  # filled by eval/data/resolve_ids.py; stale ids fail here
                assert g.provision_id in res.qrels[q.id], (q.id, g.provision_id)


# ---------------------------------------------------------------- qrels, queries, BEIR
def test_queries_and_qrels_files(tmp_path):
    (tmp_path / "q.jsonl").write_text('{"_id": "1", "text": "甲"}\n\n{"id": "2", "query": "乙", "kind": "fact"}\n', "utf-8")
    (tmp_path / "r.tsv").write_text("query-id\tcorpus-id\tscore\n1\tdocA\t1\n1\tdocB\t0\n2\tx#p1\t2\n", "utf-8")
    qs = load_queries(tmp_path / "q.jsonl")
    assert [(q.id, q.query, q.kind) for q in qs] == [("1", "甲", "query"), ("2", "乙", "fact")]
    qrels = load_qrels(tmp_path / "r.tsv")
    assert qrels == {"1": {"docA": 1, "docB": 0}, "2": {"x#p1": 2}}
    assert qrels_level({"1": {"docA": 1}}) == "doc"
    assert qrels_level({"1": {"d#1": 1, "d#2": 1}}) == "provision"
    (tmp_path / "bad.tsv").write_text("1\tdocA\n", "utf-8")
    with pytest.raises(ValueError, match="bad.tsv:1"):
        load_qrels(tmp_path / "bad.tsv")


def _tiny_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": "a1", "title": "刑法第一条", "text": "为了惩罚犯罪，保护人民。"},
            {"_id": "a2", "title": "民法典第三条", "text": "民事主体的人身权利、财产权利受法律保护。"}]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), "utf-8")
    qs = [{"_id": "7", "text": "财产权利受保护吗"}, {"_id": "8", "text": "为什么惩罚犯罪"}, {"_id": "9", "text": "未标注"}]
    (root / "queries-train.jsonl").write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in qs), "utf-8")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n7\ta2\t1\n8\ta1\t1\n", "utf-8")
    return root


def test_load_beir_tiny_fixture(tmp_path):
    root = _tiny_beir(tmp_path / "tiny")
    data = load_beir(root, split="train")
    corpus, questions, qrels = data  # tuple-unpackable
    assert corpus == root / "corpus.jsonl"
    assert [q.id for q in questions] == ["7", "8"]  # unjudged query 9 left out
    assert qrels == {"7": {"a2": 1}, "8": {"a1": 1}} and qrels_level(qrels) == "doc"
    assert [q.id for q in load_beir(root, limit=1).questions] == ["7"] and load_beir(root, limit=1).qrels.keys() == {"7"}
    with pytest.raises(FileNotFoundError, match="available splits"):
        load_beir(root, split="test")
    d1 = beir_index_dir(data.corpus, "fake/model", root=tmp_path)
    (root / "corpus.jsonl").write_text("{}\n", "utf-8")
    assert beir_index_dir(data.corpus, "fake/model", root=tmp_path) != d1  # keyed by the corpus hash


@pytest.mark.shared
def test_load_beir_stard(shared_dir):
    data = load_beir(shared_dir / "bench" / "stard", split="train")
    assert len(data.questions) > 1000 and all(data.qrels[q.id] for q in data.questions)


# ---------------------------------------------------------------- runner and report on a fake searcher
class FakeSearcher:
    """Returns canned hits per query; ``min_score`` drops hits below it, as the real Searcher's threshold does."""

    def __init__(self, documents, canned, manifest=None):
        self.documents, self.canned, self.manifest, self.min_score = documents, canned, manifest or {}, None
        self.modes = []

    def query(self, query, k=10, *, mode="hybrid", **_):
        self.modes.append(mode)
        hits = [Hit(pid.split("#")[0], pid, pid, "t", "x", s) for pid, s in self.canned.get(query, [])]
        hits = [h for h in hits if self.min_score is None or h.score >= self.min_score][:k]
        return SimpleNamespace(hits=tuple(hits), warnings=(), reason=None if hits else "nothing relevant")


@pytest.fixture
def fake_setup():
    d = _doc("D", ["甲条款的内容在这里。", "乙条款的内容在这里。", "丙条款的内容在这里。"])
    qs = [
        Question("q1", "问甲", "keyword", "dev", (Gold("D", "甲条款的内容在这里"),)),
        Question("q2", "问乙", "keyword", "test", (Gold("D", "乙条款的内容在这里"),)),
        Question("q3", "无关", "out_of_corpus", "dev"),
        Question("q4", "也无关", "out_of_corpus", "test"),
    ]
    canned = {"问甲": [("D#0", 0.9), ("D#0", 0.8), ("D#1", 0.5)], "问乙": [("D#0", 0.7), ("D#1", 0.6)],
              "无关": [("D#2", 0.3)]}
    return FakeSearcher({"D": d}, canned, {"model": {"name": "fake"}, "corpus_hash": "abc"}), qs


def test_evaluate_on_fake_searcher(fake_setup):
    searcher, qs = fake_setup
    r = evaluate(searcher, qs, k=10, mode="bm25")
    assert searcher.modes == ["bm25"] * 4 and r["level"] == "provision" and r["unresolved"] == []
    assert r["splits"]["dev"]["overall"]["mrr@10"] == 1.0
    assert r["splits"]["test"]["overall"]["mrr@10"] == 0.5
    assert r["splits"]["all"]["overall"]["recall@5"] == 1.0
    assert r["splits"]["dev"]["abstention"]["ooc_abstain_rate"] == 0.0  # q3 got a hit
    assert r["splits"]["test"]["abstention"]["ooc_abstain_rate"] == 1.0
    assert r["splits"]["all"]["by_kind"]["out_of_corpus"]["ooc_abstain_rate"] == 0.5
    q1 = next(p for p in r["per_question"] if p["id"] == "q1")
    assert q1["top"] == ["D#0", "D#1"] and q1["first_relevant_rank"] == 1  # chunk duplicates merged
    assert r["index"]["corpus_hash"] == "abc"


def test_calibrate_and_ablations_on_fake_searcher(fake_setup, tmp_path):
    searcher, qs = fake_setup
    searcher.min_score = 0.99  # calibration must switch it off while measuring, then restore it
    cal = calibrate(searcher, qs, split=None)
    assert searcher.min_score == 0.99
    # tops: q1 .9, q2 .7, q3 .3 (ooc) -> threshold between .3 and .7 silences q3 and keeps every answer
    assert cal.threshold == pytest.approx(0.5) and cal.objective == 1.0
    searcher.min_score = cal.threshold
    bundle = run_ablations(searcher, qs, modes=("bm25", "hybrid"), no_context_searcher=searcher)
    assert list(bundle["runs"]) == ["bm25", "hybrid", "hybrid-no-context"]
    assert bundle["runs"]["hybrid"]["splits"]["all"]["abstention"]["ooc_abstain_rate"] == 1.0
    jpath, mpath = write_report({**bundle, "calibration": cal.to_dict()}, tmp_path, name="fake run")
    data = json.loads(jpath.read_text("utf-8"))
    assert data["git"]["commit"] and data["index"]["model"] == {"name": "fake"}
    md = mpath.read_text("utf-8")
    assert jpath.name == "fake-run.json" and "| hybrid-no-context | test |" in md and "corpus_hash" in md


def test_evaluate_with_doc_level_qrels(fake_setup):
    searcher, qs = fake_setup
    r = evaluate(searcher, qs[:2], qrels={"q1": {"D": 1}, "q2": {"D": 1}})
    assert r["level"] == "doc" and r["splits"]["all"]["overall"]["mrr@10"] == 1.0


# ---------------------------------------------------------------- against the real index/search code
def test_evaluate_real_searcher_on_hand_made_documents(tmp_path, fake_embedder):
    from index import search, store
    docs = [
        _doc("A", ["加强与广东省相关机构合作，实现异地就医即时结算并报销医保费用。", "加快长沙机场改扩建，湘西、郴州机场建设。"]),
        _doc("B", ["推进社会保险异地办理，推动居民医疗保障同城同结算。", "严禁垃圾、秸秆露天焚烧，严控烟花爆竹燃放。"]),
    ]
    store.build_index(docs, tmp_path / "ix", fake_embedder, store.IndexSettings(), progress=False)
    searcher = search.Searcher.load(tmp_path / "ix", fake_embedder)
    qs = [
        Question("q1", "异地就医即时结算", "keyword", "dev", (Gold("A", "实现异地就医即时结算"),)),
        Question("q2", "秸秆露天焚烧", "keyword", "test", (Gold("B", "秸秆露天焚烧"),)),
        Question("q3", "医保结算", "multi_doc", "test", (Gold("A", "报销医保费用"), Gold("B", "同城同结算"))),
    ]
    r = evaluate(searcher, qs, mode="bm25")
    assert r["unresolved"] == [] and r["index"]["model"]["name"] == fake_embedder.name
    assert r["splits"]["all"]["overall"]["mrr@10"] == 1.0
    assert r["splits"]["all"]["overall"]["recall@5"] == 1.0


def test_ablations_switch_each_shipped_default_off_including_the_everyday_dense_query(tmp_path, fake_embedder):
    from index import search, store
    from eval.run import _default_variants

    store.build_index([_doc("A", ["异地就医即时结算并报销医保费用。"])], tmp_path / "ix", fake_embedder,
                      store.IndexSettings(), progress=False)
    searcher = search.Searcher.load(tmp_path / "ix", fake_embedder)
    qs = [Question("q1", "在外地看病能报吗", "colloquial", "dev", (Gold("A", "异地就医"),))]
    variants = {name: (changes, modes) for name, changes, modes in _default_variants(searcher, MODES, qs)}
    assert variants["no-everyday-dense"] == ({"everyday_dense": False}, ["dense", "hybrid"])
    assert "no-relevance" not in variants  # the fake model has no shipped stage
    off = _default_variants(searcher.with_settings(everyday_dense=False), MODES, qs)
    assert "no-everyday-dense" not in {name for name, _, _ in off}


def test_each_timed_search_encodes_its_question_afresh(tmp_path, fake_embedder):
    from index import search, store
    from eval.run import run_questions

    class Cached:  # a query-vector cache like the real embedder's
        def __init__(self, inner):
            self._inner, self.cache, self.encoded = inner, {}, []

        def __getattr__(self, name):
            return getattr(self._inner, name)

        def clear_query_cache(self):
            self.cache.clear()

        def encode_queries(self, texts):
            for t in texts:
                if t not in self.cache:
                    self.encoded.append(t)
                    self.cache[t] = self._inner.encode_queries([t])[0]
            return np.stack([self.cache[t] for t in texts])

    store.build_index([_doc("A", ["异地就医即时结算并报销医保费用。"])], tmp_path / "ix", fake_embedder,
                      store.IndexSettings(), progress=False)
    emb = Cached(fake_embedder)
    searcher = search.Searcher.load(tmp_path / "ix", emb)
    qs = [Question("q1", "医保结算", "keyword", "dev", (Gold("A", "异地就医"),))]
    run_questions(searcher, qs, mode="dense")
    run_questions(searcher, qs, mode="hybrid")  # the same question again: encoded again, not read from the cache
    assert emb.encoded == ["医保结算", "医保结算"]


def test_tune_ranks_query_time_variants(tmp_path, fake_embedder):
    from index import search, store
    from eval.run import tune

    docs = [_doc("A", ["异地就医即时结算并报销医保费用。", "加快长沙机场改扩建。"]),
            _doc("B", ["严禁秸秆露天焚烧。", "推动居民医疗保障同城同结算。"])]
    store.build_index(docs, tmp_path / "ix", fake_embedder, store.IndexSettings(), progress=False)
    searcher = search.Searcher.load(tmp_path / "ix", fake_embedder)
    qs = [Question("q1", "秸秆露天焚烧", "keyword", "dev", (Gold("B", "严禁秸秆露天焚烧"),))]
    rows = tune(searcher, qs, [{"w_dense": 1.0, "w_bm25": 0.0}, {"w_dense": 0.0, "w_bm25": 1.0}])
    assert len(rows) == 2 and {r["settings"]["w_bm25"] for r in rows} == {0.0, 1.0}
    assert rows[0]["mrr@10"] >= rows[1]["mrr@10"] and rows[0]["mrr@10"] == 1.0


# ---------------------------------------------------------------- TREC files and paired comparison
def test_trec_files_round_trip_and_the_comparison_finds_a_real_gain(tmp_path):
    from eval.compare import (compare_runs, randomization_p, read_qrels_any, read_trec_run, render_comparison,
                              write_trec_qrels, write_trec_run)

    qrels = {f"q{i}": {f"d{i}": 1} for i in range(30)}
    good = {f"q{i}": [(f"d{i}", 0.9), ("x", 0.5)] for i in range(30)}  # gold first everywhere
    bad = {f"q{i}": [("x", 0.9), ("y", 0.8), (f"d{i}", 0.1)] for i in range(30)}  # gold third
    same = {q: list(v) for q, v in bad.items()}
    write_trec_qrels(tmp_path / "q.qrels", qrels)
    for name, run in (("bad", bad), ("good", good), ("same", same)):
        write_trec_run(tmp_path / f"{name}.trec", run, name)
    assert read_qrels_any(tmp_path / "q.qrels") == qrels
    assert read_trec_run(tmp_path / "bad.trec")["q3"] == ["x", "y", "d3"]  # rank order survives equal scores
    runs = {n: read_trec_run(tmp_path / f"{n}.trec") for n in ("bad", "good", "same")}
    res = compare_runs(qrels, runs)
    assert res["means"]["bad"]["mrr@10"] == pytest.approx(1 / 3) and res["means"]["good"]["mrr@10"] == 1.0
    assert res["tests"]["good"]["mrr@10"]["p_student"] < 0.001 and res["tests"]["good"]["mrr@10"]["p_holm"] < 0.05
    assert res["tests"]["same"]["mrr@10"]["p_student"] == 1.0 and res["tests"]["same"]["mrr@10"]["delta"] == 0
    assert "†" in render_comparison(res).split("| good |")[1].split("\n")[0]
    noisy = np.random.default_rng(0).standard_normal(40)
    assert randomization_p(np.zeros(40), noisy * 0.01) > 0.05 and randomization_p(np.zeros(40), noisy + 3) < 0.01


def test_every_eval_report_writes_its_trec_runs(tmp_path, fake_setup):
    searcher, questions = fake_setup
    result = evaluate(searcher, questions, 2, name="hybrid")
    write_report(result, tmp_path, "r")
    run = (tmp_path / "runs" / "r.hybrid.trec").read_text(encoding="utf-8").splitlines()
    assert run and run[0].split()[:4] == ["q1", "Q0", run[0].split()[2], "1"]
    assert (tmp_path / "runs" / "r.qrels").read_text(encoding="utf-8").strip()
    assert "_ranked" not in (tmp_path / "r.json").read_text(encoding="utf-8")
