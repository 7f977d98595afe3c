"""Everyday Chinese words -> official words (index/everyday.py) and their use in BM25 and search."""
from __future__ import annotations

from index import everyday
from index.search import Searcher
from index.store import build_index
from index_fixtures import make_document

KNOWN = {"异地", "就医", "报销", "结算", "就业", "农民工", "社会保险"}


def known(word: str) -> int:
    return int(word in KNOWN)


def test_the_bundled_table_reads_and_maps_everyday_words_to_official_ones():
    t = everyday.table()
    assert len(t) >= 100
    assert t["外地"] == ("异地",) and "就医" in t["看病"]
    assert all(words and all(w.strip() for w in words) for words in t.values())


def test_whole_tokens_and_longer_words_inside_the_text_are_found_in_question_order():
    text = "去外地住院花的钱回来能报吗"
    found = everyday.concepts(text, ["去", "外地", "住院", "花", "钱", "回来", "能报"], known)
    assert [(c.words, c.terms) for c in found] == [(("外地",), ("异地",)), (("能报",), ("报销", "结算"))]
    # jieba cuts 找工作 into 找/工作: a two-character table word is also found inside the text
    assert [c.terms for c in everyday.concepts("找工作有补贴吗", ["找", "工作", "补贴"], known)] == [("就业",)]


def test_a_one_character_word_counts_only_as_a_whole_token():
    assert everyday.concepts("报告什么时候交", ["报告", "什么", "时候", "交"], known) == ()
    assert [c.terms for c in everyday.concepts("能不能报", ["能不能", "报"], known)][0][:1] == ("报销",)


def test_words_the_index_does_not_know_or_the_question_already_says_are_dropped():
    assert everyday.concepts("外地", ["外地"], lambda w: 0) == ()
    assert everyday.concepts("外地异地都行", ["外地", "异地", "都", "行"], known) == ()  # 异地 already said
    # 能报 then 报销: the second adds nothing new, so it is one concept, not two
    found = everyday.concepts("看病的钱能报销吗", ["看病", "钱", "能", "报销"], known)
    assert [c.words[0] for c in found] == ["看病", "能报"]


def test_the_note_names_each_word_and_what_it_was_searched_as():
    found = everyday.concepts("在外地看病", ["在", "外地", "看病"], known)
    assert everyday.note(found) == ("口语词对照检索：外地→异地、看病→就医",)
    assert everyday.note(()) == ()


def test_an_everyday_question_finds_the_official_provision_through_bm25(tmp_path, fake_embedder):
    doc = make_document("d", "测试文件", [(("1．条目",), "推进异地就医直接结算。"),
                                        (("2．条目",), "加强生态环境保护。"), (("3．条目",), "推动产业转移。")])
    build_index([doc], tmp_path / "ix", fake_embedder, progress=False)
    s = Searcher.load(tmp_path / "ix", fake_embedder)
    hits = s.search("在外地看病", k=1, mode="bm25")
    assert hits and hits[0].text.startswith("推进异地就医")
    assert s.query("在外地看病", mode="bm25").notes[0].startswith("口语词对照检索：外地→异地")
    off = s.with_settings(translate=False)
    assert off.translation("在外地看病") == () and off.search("在外地看病", k=1, mode="bm25") == []


def test_the_page_says_which_everyday_words_were_matched_and_calls_nothing_english(tmp_path, fake_embedder):
    from app.ui import SearchApp

    doc = make_document("d", "测试文件", [(("1．条目",), "推进异地就医直接结算。"), (("2．条目",), "加强生态环境保护。")])
    build_index([doc], tmp_path / "ix", fake_embedder, progress=False)
    page, _ = SearchApp(Searcher.load(tmp_path / "ix", fake_embedder)).search_view("在外地看病", "bm25")
    assert "口语词对照检索：外地→异地" in page and "英文问题" not in page and "CC-CEDICT" not in page


def test_the_question_in_the_documents_words_replaces_each_everyday_word_by_its_first_official_word():
    from index.query_terms import official_text

    found = everyday.concepts("去外地住院花的钱回来能报吗", ["去", "外地", "住院", "花", "钱", "回来", "能报", "吗"], known)
    assert official_text("去外地住院花的钱回来能报吗", found) == "去异地住院花的钱回来报销吗"
    assert official_text("去外地住院", ()) is None  # no everyday word: no second query
    assert official_text("medical insurance", found) is None  # English: its concepts are a translation, not a rewrite


class _Spy:
    """An embedder that records the queries it encodes."""

    def __init__(self, inner):
        self._inner, self.queries = inner, []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def encode_queries(self, texts):
        self.queries.extend(texts)
        return self._inner.encode_queries(texts)


def test_everyday_dense_searches_the_mean_of_the_question_and_its_official_wording(tmp_path, fake_embedder):
    import numpy as np

    doc = make_document("d", "测试文件", [(("1．条目",), "推进异地就医直接结算。"), (("2．条目",), "加强生态环境保护。")])
    build_index([doc], tmp_path / "ix", fake_embedder, progress=False)
    spy = _Spy(fake_embedder)
    s = Searcher.load(tmp_path / "ix", spy)
    q = "在外地看病"
    a, b = fake_embedder.encode_queries([q, "在异地就医"])
    s.with_settings(everyday_dense=False).query(q)
    assert spy.queries == [q]
    spy.queries.clear()
    on = s.with_settings(everyday_dense=True)
    on.query(q)
    assert spy.queries == [q, "在异地就医"]  # the question as written, then in the documents' words
    plain, searched = on._dense_query(q, on.translation(q))
    mean = (a + b) / np.linalg.norm(a + b)
    assert np.allclose(searched, mean, atol=1e-6) and np.allclose(plain, mean, atol=1e-6)
    spy.queries.clear()
    on.query("eligible for reimbursement")  # English: its dictionary words go to BM25; the dense query is as written
    assert spy.queries == ["eligible for reimbursement"]
