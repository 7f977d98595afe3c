"""Issue #16 on the page's handlers and HTML (no browser): relevance levels, folding, the 要点 from strong hits only,
filters that narrow each other, 对比 per document with relevance, shareable state, citations to paste, plain Chinese,
document facts and 时效, feedback and the export."""
from __future__ import annotations

import csv
import html
import io
import json
import re
from dataclasses import replace
from datetime import date

import pytest

from app import export, render
from app.cite import hit_citation, reference_of
from app.feedback import FeedbackLog, read_feedback, to_labelled
from app.levels import MORE_LABEL, POSSIBLE_NOTE, relevance_level
from app.ui import SearchApp
from index.types import Hit
from ui_stub import DOCS, RelevanceStub, StubSearcher

QUESTION = "哪些条款涉及医保异地结算"
TAG = re.compile(r"<[^>]+>")


def _visible(markup: str) -> str:
    return html.unescape(TAG.sub("", markup))


def _hit(rel: float | None, confident: bool, n: int = 1, **kw) -> Hit:
    return Hit(f"d{n}", f"d{n}#p", f"d{n}#p", "标题", f"推进医保异地结算。第{n}条。", 0.5, ("一、总则",),
               relevance=rel, confident=confident, **kw)


@pytest.fixture
def app(tmp_path):
    return SearchApp(RelevanceStub(), feedback=FeedbackLog(tmp_path / "fb.jsonl"))


# ---------------------------------------------------------------- 1. relevance on the page
def test_one_function_gives_the_level_of_a_hit():
    assert relevance_level(_hit(0.64, True)) == "strong"
    assert relevance_level(_hit(0.07, True)) == "possible"  # above the stage's threshold, not by much
    assert relevance_level(_hit(0.03, False)) == "weak"
    assert relevance_level(_hit(None, True)) == "strong"  # an index without a relevance stage: as before


def test_weak_cards_are_folded_and_the_summary_quotes_strong_hits_only():
    hits = [_hit(0.6, True, 1), _hit(0.1, True, 2), _hit(0.01, False, 3), _hit(0.005, False, 4)]
    out = render.render_results(QUESTION, hits, {})
    shown, folded = out.split('<details class="pq-more">')
    assert MORE_LABEL in folded and folded.count("<article") == 2 and shown.count("<article") == 2
    assert "直接相关" in shown and "可能相关" in shown and folded.count("关联较弱") == 2
    summary = out.split('<section class="pq-summary">')[1].split("</section>")[0]
    assert 'data-card="1"' in summary and 'data-card="2"' not in summary  # 要点 only from the strong card
    assert "2 条达到相关阈值" in _visible(out) and "2 条关联较弱已折叠" in _visible(out)


def test_when_nothing_is_strong_the_page_says_so_above_the_closest_hits():
    out = render.render_results(QUESTION, [_hit(0.1, False, 1), _hit(0.01, False, 2)], {})
    assert render.NO_ANSWER_NOTE in out and "pq-summary" not in out
    assert out.index(render.NO_ANSWER_NOTE) < out.index("<article")
    # a hit at the threshold but under the 直接相关 cut: found (as the JSON says), not quoted, not "nothing found"
    possible = render.render_results(QUESTION, [_hit(0.1, True, 1), _hit(0.01, False, 2)], {})
    assert POSSIBLE_NOTE in possible and render.NO_ANSWER_NOTE not in possible and "pq-summary" not in possible
    assert possible.index(POSSIBLE_NOTE) < possible.index("<article") and "可能相关" in possible
    only_weak = render.render_results(QUESTION, [_hit(0.01, False, 1)], {})
    assert "<details" not in only_weak and only_weak.count("<article") == 1  # nothing to fold them under


def test_the_filtered_search_keeps_the_answer_and_the_page_shows_it(app):
    html_, kept = app.search_view(QUESTION, "hybrid", 10, "czt")
    assert [h.doc_id for h in kept[1]] == ["czt"] and "未找到" not in _visible(html_)
    assert "要点" in html_ and "同城同结算" not in html_  # the stub's text; the real corpus: tests/test_page_real.py


def test_filter_choices_narrow_each_other_with_counts(app):
    every = app.filter_choices()
    assert ("萍乡市（1 份）", "萍乡市") in every["region"] and ("湖南省（2 份）", "湖南省") in every["region"]
    assert ("中共湖南省委（1 份）", "中共湖南省委") in every["issuer"]  # a joint issuer is two choices
    pingxiang = app.filter_choices(region="萍乡市")
    assert [v for _, v in pingxiang["year"]] == ["", "2019"]  # 萍乡市 + 2020 is not offered
    assert [v for _, v in pingxiang["doc"]] == ["", "px"]
    assert [v for _, v in pingxiang["region"]] == ["", "湖南省", "萍乡市"]  # its own choices stay open
    y2020 = app.filter_choices(year="2020")
    assert [v for _, v in y2020["region"]] == ["", "湖南省"]


def test_compare_shows_each_documents_best_provisions_with_relevance_or_says_it_is_absent(app):
    out = app.compare_view("推进长株潭城际轨道交通建设", "doc", ["czt", "hn"])
    czt, hn = out.split('<section class="pq-col">')[1:]
    assert "直接相关" in czt and "相关度 1.00" in czt
    assert "本文件未涉及" in hn and "<details" in hn and "关联较弱" in hn  # the closest one offered, folded
    assert "本文件未涉及" not in czt


# ---------------------------------------------------------------- 2. shareable state, citations to paste
def test_a_shared_url_carries_question_k_and_filters():
    state = SearchApp.url_state({"q": QUESTION, "k": "5", "region": "萍乡市", "mode": "bm25"})
    assert state == {"q": QUESTION, "k": 5, "mode": "bm25", "doc": "", "region": "萍乡市", "issuer": "", "year": ""}
    assert SearchApp.url_state({}) is None and SearchApp.url_state({"q": "  "}) is None
    assert SearchApp.url_state({"q": "x", "k": "999", "mode": "regex"})["k"] == 30
    assert SearchApp.url_state({"q": "x", "k": "many"})["mode"] == "hybrid"


def test_cards_copy_the_citation_and_a_gbt7714_reference(app):
    html_, kept = app.search_view(QUESTION)
    hit = kept[1][0]
    assert f'data-copy="{html.escape(hit_citation(hit))}"' in html_
    ref = reference_of(hit, DOCS["hn"], today=date(2026, 12, 2))
    assert ref == ("湖南省人民政府办公厅. 湖南省对接粤港澳大湾区实施方案（2020—2025年）: 湘政办发〔2020〕8号[EB/OL]. "
                   "(2020-03-02)[2026-12-02]. http://fgw.hunan.gov.cn/x.html.")
    assert reference_of(kept[1][1], DOCS["czt"]) == "中共湖南省委、湖南省人民政府. 长株潭区域一体化发展规划纲要[Z]. 2021-03-05."
    summary = html_.split('<section class="pq-summary">')[1]
    assert 'data-kind="summary"' in summary and hit_citation(hit) in html.unescape(summary)
    # [n] in the 要点 names the provision the full text opens
    assert re.search(r'class="pq-ref" href="#pq-card-1" data-doc="hn" data-pid="hn#p0" data-card="1"', summary)


# ---------------------------------------------------------------- 3. every screen, plain Chinese
def test_a_long_question_is_flagged_in_the_page_s_words(app):
    html_, _ = app.search_view("医保异地结算" * 500)
    assert "问题过长（3,000 字），已截断至 2,000 字" in _visible(html_)


def test_english_notes_name_no_library():
    class English(RelevanceStub):
        def run(self, request):
            resp = super().run(replace(request, query="医保"))
            return replace(resp, notes=("英文查询按 CC-CEDICT 词典与政策术语表对照中文词检索：医保",), terms=("医保",),
                           query=request.query)

    html_, _ = SearchApp(English()).search_view("medical insurance")
    assert "CC-CEDICT" not in html_ and "英汉词典" in html_


def test_time_is_never_shown_as_zero():
    out = render.render_results(QUESTION, [_hit(0.6, True)], {}, elapsed=0.0004)
    assert "0.00 秒" not in out and "用时 1 毫秒" in out
    assert "用时 1.50 秒" in render.render_results(QUESTION, [_hit(0.6, True)], {}, elapsed=1.5)


def test_a_scrambled_source_document_is_flagged(corpus_dir):
    from index.ingest import load_documents

    docs = {d.id[:3]: d for d in load_documents(sorted(corpus_dir.glob("*.txt")), progress=False).documents}
    assert "来源文本有重复或顺序错乱" in render.render_document(docs["002"])
    for clean in ("001", "003", "004"):
        assert "来源文本有重复或顺序错乱" not in render.render_document(docs[clean])


def test_the_outline_is_collapsible():
    out = render.render_document(DOCS["hn"], "hn#p0")
    assert '<details class="pq-outline" open><summary>目录</summary>' in out


# ---------------------------------------------------------------- 4. document facts and 时效
def test_the_full_text_opens_with_the_documents_facts():
    out = _visible(render.render_document(DOCS["hn"]))
    for fact in ("文号湘政办发〔2020〕8号", "发文机关湖南省人民政府办公厅", "成文/发布日期2020-03-02", "地区湖南省",
                 "时效规划期 2020—2025 年（", "原文链接", "下载全文（TXT）"):
        assert fact in out, fact
    assert "000_f620c4800d4537e4.txt" not in out


def test_cards_show_the_validity_state(app):
    from app import facts

    assert facts.validity_text(DOCS["hn"], date(2026, 12, 2)) == "规划期 2020—2025 年（已届满）"
    assert facts.validity_text(DOCS["hn"], date(2024, 1, 1)) == "规划期 2020—2025 年（在期内）"
    assert facts.validity_text(DOCS["px"]) == "文中未注明有效期"
    html_, _ = app.search_view(QUESTION)
    assert "时效：规划期 2020—2025 年" in _visible(html_) and "时效：文中未注明" in _visible(html_)


def test_the_indexed_text_downloads_by_document_id_only(app, tmp_path):
    from app.downloads import ExportStore

    app._exports = ExportStore(parent=tmp_path)
    link = app.document_download("hn")
    assert ".txt" in link and "pq-export/" in link
    assert "索引中没有这个文件" in app.document_download("../../etc/passwd")


# ---------------------------------------------------------------- 5. feedback and export
def test_votes_are_appended_without_personal_data_and_become_labelled_questions(app, tmp_path):
    _, kept = app.search_view(QUESTION, "hybrid", 10, "", "湖南省")
    assert app.record_feedback(kept, "card", "2", "down") == "已记录反馈，谢谢。"
    assert app.record_feedback(kept, "answer", "0", "up") == "已记录反馈，谢谢。"
    assert "无法记录" in app.record_feedback(kept, "card", "99", "up")
    assert "无法记录" in app.record_feedback(("", ()), "answer", 0, "up")
    records = read_feedback(tmp_path / "fb.jsonl")
    assert [r["vote"] for r in records] == ["down", "up"] and records[0]["filters"]["region"] == "湖南省"
    assert not {"ip", "session", "user", "owner"} & set(records[0])
    assert records[0]["hits"][0]["provision_id"] == kept[1][1].provision_id
    queries, qrels = to_labelled(records)
    assert queries == [{"id": "fb1", "query": QUESTION}]
    assert qrels["fb1"][kept[1][1].provision_id] == 1  # the 👍 on the answer (quoting czt's provision) came last
    assert qrels["fb1"][kept[1][0].provision_id] == 1


def test_export_carries_the_summary_filters_and_per_item_facts(app, tmp_path):
    from app.downloads import ExportStore

    app._exports = ExportStore(parent=tmp_path)
    _, kept = app.search_view(QUESTION, "hybrid", 10, "", "湖南省")
    md_path, csv_path = app.export_files(kept)
    md = open(md_path, encoding="utf-8").read()
    assert "## 要点" in md and "筛选与设置：地区：湖南省" in md
    for fact in ("相关性：直接相关 · 相关度 0.31", "发文机关：湖南省人民政府办公厅", "日期：2020-03-02",
                 "时效：规划期 2020—2025 年"):
        assert fact in md, fact
    rows = list(csv.DictReader(io.StringIO(open(csv_path, encoding="utf-8-sig").read())))
    assert rows[0]["level"] == "直接相关" and rows[0]["validity"].startswith("规划期 2020—2025 年")
    assert rows[0]["relevance"] == "0.3065" and rows[0]["url"] == "http://fgw.hunan.gov.cn/x.html"


def test_plain_stub_without_relevance_stage_still_renders():
    html_, kept = SearchApp(StubSearcher()).search_view(QUESTION)
    assert html_.count('<article class="pq-card"') == 3 and "<details" not in html_
    json.dumps(export.response_json(StubSearcher().query(QUESTION)))


def test_policyqa_eval_feedback_writes_questions_and_qrels_that_eval_reads(app, tmp_path):
    from typer.testing import CliRunner

    from app.cli import app as cli
    from eval.questions import load_qrels, load_queries

    _, kept = app.search_view(QUESTION)
    app.record_feedback(kept, "card", 1, "up")
    app.record_feedback(kept, "card", 3, "down")
    res = CliRunner().invoke(cli, ["eval", "feedback", str(tmp_path / "fb.jsonl"), "--out", str(tmp_path / "lab")])
    assert res.exit_code == 0, res.output
    assert [q.query for q in load_queries(tmp_path / "lab" / "queries.jsonl")] == [QUESTION]
    assert load_qrels(tmp_path / "lab" / "qrels.tsv") == {"fb1": {"hn#p0": 1, "px#p0": 0}}
    missing = CliRunner().invoke(cli, ["eval", "feedback", str(tmp_path / "none.jsonl")])
    assert missing.exit_code != 0 and "no feedback log" in str(missing.exception)  # main() prints it as one line


def test_compare_by_region_says_the_region_has_none(app):
    out = app.compare_view("推进长株潭城际轨道交通建设", "region", ["湖南省", "萍乡市"])
    hunan, pingxiang = out.split('<section class="pq-col">')[1:]
    assert "直接相关" in hunan and "未涉及" not in hunan
    assert "未找到相关条款" in pingxiang  # no provision of 萍乡市 shares a word with the question at all
    weak = render.render_compare("x", [("萍乡市", [_hit(0.01, False)])], {}, by="region")
    assert "本地区的文件未涉及" in weak
