"""Rendering of hits and documents: escaping, highlighting, the 要点 summary, full text, exports."""
from __future__ import annotations

import csv
import html
import io
import re
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from app import export, render
from app.cite import hit_citation
from index.types import Hit
from ui_stub import DOCS, XSS, StubSearcher

QUESTION = "哪些条款涉及医保异地结算"
TAG = re.compile(r"<[^>]+>")


def _visible(markup: str) -> str:
    """The text a browser would show (tags dropped, entities decoded)."""
    return html.unescape(TAG.sub("", markup))


def _hit(text: str, **kw) -> Hit:
    base = dict(doc_id="d", provision_id="d#1", chunk_id="d#1", title="标题", text=text, score=0.5, path=("一、总则",))
    base.update(kw)
    return Hit(**base)


def _hits(query: str = QUESTION):
    return StubSearcher().query(query).hits


# ---------------------------------------------------------------- escaping
def test_provision_markup_is_escaped_in_cards():
    hit = _hit("加强组织领导。" + XSS, title="<u>标题</u>", lead_units="<i>省医保局</i>", sources=("<x>.txt",))
    out = render.render_card(hit, 1, "组织领导<script>")
    assert "<script" not in out and "<img" not in out and "<u>" not in out and "<i>" not in out
    assert "&lt;script&gt;" in out and "&lt;img src=x onerror=" in out
    assert XSS in _visible(out)


def test_query_markup_is_escaped_everywhere():
    q = '"><img src=x onerror=alert(1)>医保'
    for out in (render.render_results(q, (), DOCS, reason="没有<u>结果</u>"),
                render.render_results(q, _hits("医保异地结算"), DOCS)):
        assert "<img" not in out and "<u>" not in out
        assert 'data-query="&quot;&gt;&lt;img src=x onerror=alert(1)&gt;医保"' in out
    assert q in _visible(render.render_empty(q, None))
    out = render.render_compare(q, [("<h1>列</h1>", ())], DOCS)
    assert "<h1>" not in out and "&lt;h1&gt;列" in out


def test_document_view_escapes_text_and_refuses_unsafe_urls():
    out = render.render_document(DOCS["hn"], "hn#p2", "组织领导")
    assert "<script" not in out and "<img" not in out
    assert 'href="http://fgw.hunan.gov.cn/x.html"' in out
    assert "javascript:" not in out.split("001_bf613616185b5f44.txt")[0][-200:]  # shown as text, never a link
    assert 'href="javascript' not in out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list("医保异地结算。；！\n<>&\"'ab 推进") + ["<script>", "&amp;"]), max_size=40).map("".join),
       st.text(alphabet=st.sampled_from(list("医保异地结算<>&ab 哪些")), max_size=12))
def test_highlight_keeps_every_character_and_adds_only_own_tags(text, query):
    out = render.highlight(text, query)
    assert _visible(out) == text
    assert set(re.findall(r"</?([a-z]+)", out)) <= {"mark", "span"}


# ---------------------------------------------------------------- highlighting and summary
def test_query_terms_drop_question_words():
    terms = render.query_terms(QUESTION, "推进医保异地结算，涉及哪些条款")
    assert "医保异地结算" in terms or {"医保", "异地", "结算"} <= set(terms)
    assert not {"哪些", "条款", "涉及"} & set(terms)


def test_traditional_query_highlights_simplified_text():
    assert "长株潭" in render.query_terms("長株潭一體化", "推进长株潭一体化发展")


def test_highlight_marks_terms_and_best_sentence():
    text = "14.加强医疗卫生合作。推进医保异地结算，实现跨省异地就医直接结算。支持来湘办医。"
    out = render.highlight(text, QUESTION)
    best = re.search(r'<span class="pq-best">(.*?)</span>', out).group(1)
    assert _visible(best) == "推进医保异地结算，实现跨省异地就医直接结算。"
    assert re.findall(r"<mark>(.*?)</mark>", out) == ["医保异地结算", "异地", "结算"]


def test_no_highlight_without_matching_terms():
    assert render.highlight("加强组织领导。", QUESTION) == "加强组织领导。"


def test_summary_quotes_verbatim_sentences_with_card_numbers():
    hits = _hits()
    items = render.summary(hits, QUESTION)
    assert 1 <= len(items) <= 3
    for sentence, rank in items:
        assert sentence in hits[rank - 1].text  # nothing said that is not quoted
    assert [r for _, r in items] == [1, 2, 3]
    block = render.render_summary(hits, QUESTION)
    assert 'href="#pq-card-1"' in block and ">[1]</a>" in block


def test_summary_of_no_hits_is_empty():
    assert render.summary((), QUESTION) == []
    assert render.render_summary((), QUESTION) == ""


def test_results_have_one_card_per_hit_with_citation_and_units():
    hits = _hits()
    out = render.render_results(QUESTION, hits, DOCS, request_id="r1")
    assert out.count('<article class="pq-card"') == len(hits) == 3
    assert out.count('class="pq-cite"') == 3
    assert "《湖南省对接粤港澳大湾区实施方案（2020—2025年）》（湘政办发〔2020〕8号） › 二、重点任务" in _visible(out)
    assert "牵头单位：省医保局" in _visible(out) and "责任单位：省卫生健康委" in _visible(out)
    # the source is the original's link (and how many renderings were merged), never an internal file name (#16)
    assert "000_f620c4800d4537e4.txt" not in out and "001_bf613616185b5f44.txt" not in out
    assert 'href="http://fgw.hunan.gov.cn/x.html"' in out and "据 2 份 TXT 原件整理" in _visible(out)
    assert "原文链接未注明" in _visible(out)  # 长株潭's text states no URL
    assert 'data-request="r1"' in out and 'data-pid="hn#p0"' in out


def test_empty_state_says_why():
    out = render.render_results("量子计算", (), DOCS, reason="未找到相关条款")
    assert "pq-empty" in out and "未找到相关条款" in out and "pq-card" not in out
    assert "请输入问题" in render.render_results("  ", (), DOCS)


# ---------------------------------------------------------------- full text
def test_document_view_marks_target_and_keeps_all_text():
    doc = DOCS["hn"]
    out = render.render_document(doc, "hn#p0", QUESTION)
    assert out.count("pq-target") == 1
    body = out.split('<div class="pq-doc-body">', 1)[1]
    target = re.search(r'class="pq-prov pq-target">(.*?)<span class="pq-units">', body).group(1)
    assert _visible(target) == doc.provisions[0].text
    assert "<mark>" in target
    assert _visible(body).startswith(doc.text[:20])
    assert doc.provisions[1].text in _visible(body) and "XSS" not in body


def test_outline_lists_each_heading_once_in_order():
    ol = render.outline(DOCS["hn"])
    assert [(d, t) for d, t, _ in ol] == [(0, "二、重点任务"), (1, "（五）推进公共服务共建共享"),
                                         (1, "（一）构建便捷高效对接通道"), (0, "三、保障措施")]
    assert [n for *_, n in ol] == [0, 0, 1, 2]


def test_outline_marks_the_headings_above_the_target():
    out = render.render_document(DOCS["hn"], "hn#p1")
    here = re.findall(r'class="pq-ol pq-ol-\d pq-here"[^>]*>([^<]*)<', out)
    assert here == ["二、重点任务", "（一）构建便捷高效对接通道"]


def test_unknown_provision_shows_document_without_target():
    assert "pq-target" not in render.render_document(DOCS["px"], "nope", QUESTION)


# ---------------------------------------------------------------- compare
def test_compare_has_one_column_per_group_and_says_when_a_group_is_empty():
    hits = _hits()
    out = render.render_compare(QUESTION, [("甲", hits[:1]), ("乙", ())], DOCS)
    assert out.count('<section class="pq-col">') == 2
    assert "未找到相关条款" in out and 'id="pq-card-' not in out  # no duplicate anchors with the result pane


# ---------------------------------------------------------------- exports
def test_response_json_is_the_cli_shape_with_citations():
    resp = StubSearcher().query(QUESTION)
    data = export.response_json(replace(resp, warnings=("w",)))
    assert list(data) == ["query", "hits", "found", "warnings", "reason", "notes"] and data["query"] == QUESTION
    first = data["hits"][0]
    assert list(first)[:5] == ["doc_id", "provision_id", "title", "citation", "text"]
    assert first["citation"] == hit_citation(resp.hits[0]) and first["citation"].startswith("《湖南省对接粤港澳")
    assert {k: v for k, v in first.items() if k != "citation"} == resp.hits[0].to_dict() and data["warnings"] == ["w"]
    assert list(export.response_json(resp, id="q1"))[:2] == ["id", "query"]  # a batch line carries its id first


def test_csv_round_trips_and_neutralises_formulas():
    hits = (*_hits(), _hit("=HYPERLINK(\"http://x\")", title="+cmd", lead_units="@SUM(A1)"))
    rows = list(csv.DictReader(io.StringIO(export.to_csv(QUESTION, hits))))
    assert len(rows) == len(hits)
    assert rows[0]["citation"] == hit_citation(hits[0]) and rows[0]["text"] == hits[0].text and rows[0]["rank"] == "1"
    assert rows[0]["query"] == QUESTION and rows[0]["lead_units"] == "省医保局"
    last = rows[-1]
    assert last["text"].startswith("'=") and last["title"] == "'+cmd" and last["lead_units"] == "'@SUM(A1)"


def test_markdown_quotes_each_provision_under_its_citation():
    hits = _hits()
    md = export.to_markdown(QUESTION, hits)
    assert md.startswith(f"# 检索结果：{QUESTION}\n")
    for i, h in enumerate(hits, 1):
        assert f"## [{i}] {hit_citation(h)}" in md and f"> {h.text}" in md
    assert "- 牵头单位：省医保局" in md
    assert "未找到相关条款" in export.to_markdown("x", ())


# ---------------------------------------------------------------- 要点 on the default corpus
def _corpus_hits(corpus_dir, picks):
    """Hits for the provisions (doc id prefix, path suffix) in ``picks``, in that order (the real model's top 5)."""
    from index.ingest import load_documents

    docs = load_documents(sorted(corpus_dir.glob("*.txt")), progress=False).documents
    hits = []
    for doc_prefix, last in picks:
        doc = next(d for d in docs if d.id.startswith(doc_prefix))
        prov = next(p for p in doc.provisions if p.path and p.path[-1].startswith(last))
        hits.append(Hit(doc.id, prov.id, prov.id, doc.title, prov.text, 0.5, prov.path))
    return hits


def test_summary_answers_the_acceptance_question(corpus_dir):
    hits = _corpus_hits(corpus_dir, [("001", "18．"), ("004", "10."), ("003", "提升公共服务便利化水平"),
                                     ("001", "27．"), ("003", "高水平“引进来”")])
    items = render.summary(hits, QUESTION)
    quoted = " ".join(s for s, _ in items)
    for phrase in ("异地就医即时结算", "医保结算系统平台互联互通", "同城同结算"):
        assert phrase in quoted, items
    assert "住房公积金" not in quoted  # shares 异地 with the question, but is not about 医保 结算
    for sentence, rank in items:
        assert sentence in hits[rank - 1].text  # verbatim, from the card it cites
    html = render.render_results(QUESTION, hits, {})
    for sentence, rank in items:  # the [n] marker links to card n, which highlights the same sentence
        assert f'data-card="{rank}">[{rank}]</a>' in html
        card = html.split(f'id="pq-card-{rank}"')[1].split("</article>")[0]
        best = re.search(r'<span class="pq-best">(.*?)</span>', card).group(1)
        assert _visible(best).strip() == sentence


def test_ranking_words_drop_fragments_but_keep_parts_that_spell_a_word():
    assert set(render.ranking_words("对接大湾区承接产业转移")) >= {"大湾区", "承接", "转移"}
    assert not {"大湾", "湾区"} & set(render.ranking_words("对接大湾区承接产业转移"))
    assert {"异地结算", "异地", "结算", "医保"} <= set(render.ranking_words(QUESTION))


def test_summary_prefers_rare_query_words_and_drops_weak_sentences():
    hits = [_hit("大湾区合作全面推进。大湾区建设持续深化，大湾区交流不断加强。在大湾区就医可以直接结算并报销医保费用。"),
            _hit("支持企业赴大湾区直接融资，拓展大湾区市场。"), _hit("加强组织领导，确保任务落实。")]
    items = render.summary(hits, "在大湾区看病能直接用医保报销不")
    # 大湾区 is in nearly every sentence and weighs little; 医保 and 报销 are rare and decide. Card 2 (直接融资)
    # scores under a third of the best and is not quoted; card 3 has no query word.
    assert items == [("在大湾区就医可以直接结算并报销医保费用。", 1)]
    assert [q.rank for q in render.rank_quotes(hits, "在大湾区看病能直接用医保报销不")][:2] == [1, 2]
