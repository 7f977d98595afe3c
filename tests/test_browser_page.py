"""Issue #16 in Debian's Chromium, on a desktop (1440×1000) and a phone (390×844): relevance levels and folding,
filters that narrow each other, k re-running the search, 对比 per document, the URL as shareable state, copying
citations, [n] opening the full text, the facts panel and download, votes, the export, long questions, and no
sideways scrolling.  The searcher is tests/ui_stub.py's RelevanceStub (hand-made relevance, deterministic)."""
from __future__ import annotations

import json
import os
from urllib.parse import quote

import pytest

from test_browser import ARGS, CHROMIUM, SHOTS, _ask, _compare, _free_port, _last_request, _wait_new_results

pytestmark = pytest.mark.browser
QUESTION = "哪些条款涉及医保异地结算"
RAIL = "推进长株潭城际轨道交通建设"  # one strong hit (长株潭), two weak ones (湖南)
NOTHING = "量子计算与异地办公"  # only weak hits
VIEWPORTS = {"desktop": {"width": 1440, "height": 1000}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not installed ({CHROMIUM}); run scripts/browser_deps.sh")
    pytest.importorskip("playwright.sync_api")
    from app.serve import serve
    from ui_stub import RelevanceStub

    feedback = tmp_path_factory.mktemp("feedback") / "feedback.jsonl"
    old = os.environ.get("POLICYQA_FEEDBACK")
    os.environ["POLICYQA_FEEDBACK"] = str(feedback)
    port = _free_port()
    from ui_stub import DOCS, _doc

    # a scrambled web scrape (as 湘政发〔2016〕21号): a heading repeated under another parent; no word of the questions
    scrambled = _doc("fz", "湖南省深化泛珠三角区域合作实施方案", "湘政发〔2016〕21号", "湖南省", "湖南省人民政府",
                     "2016-10-24", [(("一、总体要求", "2、加强能源水利领域合作"), "共同开发水电资源。", None, None),
                                    (("二、重点任务", "2、加强能源水利领域合作"), "共同开发水电资源。", None, None)], ())
    demo = serve(None, port=port, searcher=RelevanceStub({**DOCS, "fz": scrambled}), block=False)
    yield f"http://127.0.0.1:{port}/", feedback
    demo.close()
    if old is None:
        os.environ.pop("POLICYQA_FEEDBACK", None)
    else:
        os.environ["POLICYQA_FEEDBACK"] = old


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(params=list(VIEWPORTS))
def page(request, browser, server):
    SHOTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport=VIEWPORTS[request.param], locale="zh-CN",
                                  permissions=["clipboard-read", "clipboard-write"])
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    pg.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation',"
                       " e => window.__csp.push(e.effectiveDirective + ' ' + e.blockedURI));")
    pg.viewport_name = request.param
    pg.app_url = server[0]
    pg.goto(server[0])
    pg.wait_for_selector("#pq-question textarea")
    yield pg
    assert pg.evaluate("window.__csp") == []  # everything below ran under the server's CSP
    context.close()


def _no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], (page.viewport_name, width)


def _shot(page, name: str, full: bool = False) -> None:
    page.screenshot(path=str(SHOTS / f"page_{page.viewport_name}_{name}.png"), full_page=full)


def _open_filters(page) -> None:
    if not page.locator("#pq-f-region input").is_visible():
        page.get_by_text("筛选与设置").click()
    page.locator("#pq-f-region input").wait_for(state="visible")


def _close_lists(page) -> None:
    page.keyboard.press("Escape")
    page.mouse.click(2, 2)  # away from every dropdown: Gradio closes its list on blur
    page.wait_for_function("() => !document.querySelector(\"ul[role='listbox']\")")


def _options(page, elem: str) -> list[str]:
    page.wait_for_timeout(300)  # the choices arrive with the results; let the dropdown re-render first
    page.click(f"{elem} input")
    page.locator("ul[role='listbox'] li[role='option']").first.wait_for()
    labels = page.evaluate("() => [...document.querySelectorAll(\"ul[role='listbox'] li[role='option']\")]"
                           ".map(li => li.getAttribute('aria-label'))")
    _close_lists(page)
    return labels


def _pick(page, elem: str, label: str) -> None:
    """Choose ``label`` in the dropdown ``elem`` and wait for the search it runs."""
    previous = _last_request(page)
    page.click(f"{elem} input")
    page.locator(f"ul[role='listbox'] li[aria-label='{label}']").click()
    _wait_new_results(page, previous)


# ---------------------------------------------------------------- 1. relevance, filters, 对比
def test_strong_hits_shown_weak_ones_folded_and_the_summary_quotes_only_answers(page):
    _ask(page, RAIL)
    cards = page.locator("#pq-results .pq-card")
    visible = [c for c in cards.all() if c.is_visible()]
    assert len(visible) == 1 and visible[0].get_attribute("data-level") == "strong"
    assert "直接相关" in visible[0].locator(".pq-rel").inner_text()
    more = page.locator("#pq-results details.pq-more")
    assert "更多可能相关的条款（2 条" in more.locator("summary").inner_text()
    assert page.locator("#pq-results .pq-summary a.pq-ref").all_inner_texts() == ["[1]"]
    more.locator("summary").click()
    assert all(c.is_visible() for c in more.locator(".pq-card").all())
    assert set(more.locator(".pq-rel").all_inner_texts()) == {"关联较弱"}
    _no_sideways_scroll(page)
    _shot(page, "folded", full=True)


def test_when_nothing_answers_the_page_says_so_above_the_closest_hits(page):
    _ask(page, NOTHING)
    note = page.locator("#pq-results .pq-noanswer")
    assert "没有找到直接回答该问题的条款" in note.inner_text()
    assert page.locator("#pq-results .pq-summary").count() == 0
    first = page.locator("#pq-results .pq-card").first
    assert first.is_visible() and note.bounding_box()["y"] < first.bounding_box()["y"]


def test_filters_narrow_each_other_and_k_reruns_the_search(page):
    _ask(page, QUESTION)
    _open_filters(page)
    assert "萍乡市（1 份）" in _options(page, "#pq-f-region") and "2020（1 份）" in _options(page, "#pq-f-year")
    assert "湖南省（3 份）" in _options(page, "#pq-f-region")
    _pick(page, "#pq-f-region", "萍乡市（1 份）")
    assert _options(page, "#pq-f-year") == ["全部", "2019（1 份）"]  # 萍乡市 + 2020 is no longer offered
    assert page.locator("#pq-results .pq-card").count() == 1
    page.wait_for_function("() => location.search.includes('region=')")  # the filter is in the address too
    # the 结果数 slider re-runs the search by itself (no second click)
    _pick(page, "#pq-f-region", "全部")
    assert page.locator("#pq-results .pq-card").count() == 3
    previous = _last_request(page)
    page.locator("#pq-k input[type='range']").scroll_into_view_if_needed()
    box = page.locator("#pq-k input[type='range']").bounding_box()
    page.mouse.click(box["x"] + 2, box["y"] + box["height"] / 2)  # drag to the far left: k = 1
    _wait_new_results(page, previous)
    # a search the filter change started may still land first on a loaded machine (CI saw 3 cards here once, at
    # load 6): wait for the k = 1 answer itself rather than for the next answer
    page.wait_for_function("() => document.querySelectorAll('#pq-results .pq-card').length === 1")
    page.wait_for_function("() => location.search.includes('k=1')")
    _shot(page, "filters")


def test_compare_lists_each_documents_relevant_provisions_or_says_it_is_absent(page):
    cols = _compare(page, RAIL)
    assert cols.count() == 2
    assert "直接相关" in cols.nth(0).inner_text() and "相关度 1.00" in cols.nth(0).inner_text()
    assert "本文件未涉及" in cols.nth(1).inner_text()
    _no_sideways_scroll(page)
    _shot(page, "compare")


# ---------------------------------------------------------------- 2. shareable state, citations
def test_a_shared_link_runs_its_search(page):
    page.goto(page.app_url + "?q=" + quote(QUESTION) + "&region=" + quote("湖南省") + "&k=2")
    page.wait_for_selector("#pq-results .pq-card")
    assert page.input_value("#pq-question textarea") == QUESTION
    assert page.locator("#pq-results .pq-card").count() == 2
    assert all("湖南省" in m for m in page.locator("#pq-results .pq-card .pq-meta").all_inner_texts())
    _ask(page, RAIL)
    page.wait_for_function("q => new URLSearchParams(location.search).get('q') === q", arg=RAIL)
    page.reload()
    page.wait_for_selector("#pq-results .pq-card")
    assert page.input_value("#pq-question textarea") == RAIL  # a reload keeps the question


def test_copy_buttons_give_the_citation_and_the_reference(page):
    _ask(page, QUESTION)
    card = page.locator("#pq-results .pq-card").first
    cite = card.locator(".pq-cite").inner_text().split("] ", 1)[1]
    card.locator("button.pq-copy[data-kind='cite']").click()
    page.wait_for_function("() => window.__pqCopied")
    assert page.evaluate("window.__pqCopied") == cite
    assert page.evaluate("navigator.clipboard.readText()") == cite
    card.locator("button.pq-copy[data-kind='reference']").click()
    assert "[EB/OL]" in page.evaluate("window.__pqCopied") and "湘政办发〔2020〕8号" in page.evaluate("window.__pqCopied")
    page.locator("#pq-results .pq-summary button.pq-copy").click()
    assert "《湖南省对接粤港澳大湾区实施方案" in page.evaluate("window.__pqCopied")


def test_a_summary_marker_opens_its_provision_in_the_full_text(page):
    _ask(page, QUESTION)
    ref = page.locator("#pq-results .pq-summary a.pq-ref").nth(1)
    pid = ref.get_attribute("data-pid")
    ref.click()
    target = page.locator("#pq-document .pq-target")
    target.wait_for(state="visible")
    assert "推动医保异地结算便利化" in target.inner_text() and pid == "czt#p0"


# ---------------------------------------------------------------- 3. every screen
def test_full_text_is_readable_with_facts_and_a_download(page):
    _ask(page, QUESTION)
    page.locator("#pq-results .pq-card button.pq-open").first.click()
    page.locator("#pq-document .pq-target").wait_for(state="visible")
    page.wait_for_timeout(400)  # the pane scrolls (and folds the 目录 on a phone) after it re-renders
    facts = page.locator("#pq-document .pq-facts").inner_text()
    assert "湘政办发〔2020〕8号" in facts and "规划期 2020—2025 年" in facts and "原文链接" in facts
    body = page.locator("#pq-document .pq-doc-body").bounding_box()
    assert body["width"] >= min(300, page.viewport_size["width"] - 90), body  # not a 66-px column on a phone
    outline_open = page.evaluate("document.querySelector('#pq-document details.pq-outline').open")
    assert outline_open == (page.viewport_name == "desktop")  # the 目录 starts folded on a phone
    _no_sideways_scroll(page)
    _shot(page, "full_text")
    page.locator("#pq-document button.pq-dl").click()
    page.wait_for_selector("#pq-doc-files a")
    href = page.evaluate("() => document.querySelector('#pq-doc-files a').href")
    got = page.evaluate("async h => { const r = await fetch(h); return [r.status, await r.text()]; }", href)
    assert got[0] == 200 and "医保异地结算" in got[1]


def test_a_scrambled_source_is_flagged_in_the_full_text(page):
    page.get_by_role("tab", name="全文").click()
    page.click("#pq-doc-pick input")
    page.locator("ul[role='listbox'] li[aria-label^='湖南省深化泛珠三角区域合作实施方案']").click()
    warning = page.locator("#pq-document .pq-scrambled")
    warning.wait_for(state="visible")
    assert "重复或顺序错乱" in warning.inner_text()
    _no_sideways_scroll(page)


def test_a_long_question_is_flagged_and_keeps_the_layout(page):
    _ask(page, "医保异地结算" * 500)
    assert "已截断至 2,000 字" in page.locator("#pq-results .pq-warn").first.inner_text()
    assert page.locator("#pq-ask").bounding_box()["height"] < 60
    _no_sideways_scroll(page)


# ---------------------------------------------------------------- 5. feedback, export
def test_votes_are_recorded(page, server):
    _ask(page, QUESTION)
    page.locator("#pq-results .pq-card").nth(1).locator("button.pq-vote[data-vote='down']").click()
    page.wait_for_function("() => document.querySelector('#pq-fb-status')?.innerText.includes('已记录反馈')")
    page.locator("#pq-results .pq-summary button.pq-vote[data-vote='up']").click()
    page.wait_for_function("n => document.querySelectorAll('#pq-results .pq-voted').length === n", arg=2)
    page.wait_for_timeout(500)
    lines = [json.loads(x) for x in server[1].read_text(encoding="utf-8").splitlines()]
    mine = [r for r in lines if r["query"] == QUESTION]
    assert [r["target"] for r in mine[-2:]] == ["card", "answer"] and mine[-2]["vote"] == "down"


def test_export_sits_above_the_results_and_carries_the_summary(page):
    page.click("#pq-export")  # nothing asked yet: a sentence in Chinese, no English "Error" toast
    page.wait_for_function("() => document.querySelector('#pq-files')?.innerText.includes('没有可导出的结果')")
    assert page.get_by_text("Error", exact=True).count() == 0
    _ask(page, QUESTION)
    assert page.locator("#pq-export").bounding_box()["y"] < page.locator("#pq-results .pq-card").first.bounding_box()["y"]
    page.click("#pq-export")
    page.wait_for_function("() => document.querySelectorAll('#pq-files a').length >= 2")
    href = page.evaluate("() => [...document.querySelectorAll('#pq-files a')].find(a => a.href.endsWith('.md')).href")
    md = page.evaluate("async h => (await fetch(h)).text()", href)
    assert "## 要点" in md and "相关性：直接相关" in md and "时效：规划期 2020—2025 年" in md
    _shot(page, "results")


def test_a_shared_link_with_values_the_index_lacks_says_so(page):
    page.goto(page.app_url + "?q=" + quote("医保") + "&region=" + quote("火星") + "&year=abc&k=-5&mode=x")
    page.wait_for_function("() => document.querySelector('#pq-results')?.innerText.includes('年份必须是整数')")
    assert page.input_value("#pq-question textarea") == "医保"
    assert page.get_by_text("Error", exact=True).count() == 0
    _no_sideways_scroll(page)
