"""Drive the app in Debian's Chromium: ask, read cited cards, open 查看全文, filter, 对比, and check XSS stays text.

Screenshots go to ``screenshots/`` (git-ignored). The index is built from the default corpus plus one page whose
provision holds an XSS payload; the embedder is the offline fake unless POLICYQA_BROWSER_EMBEDDER=real.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "screenshots"
CHROMIUM = Path("/usr/lib/chromium/chromium")  # the real binary in Debian's package, not the /usr/bin wrapper
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"]
QUESTION = "哪些条款涉及医保异地结算"
PAYLOAD = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
XSS_PAGE = ("关于开展网页注入演示工作的通知\n\n一、工作要求\n\n（一）注入演示条款。本条款用于检验页面转义，内容为" + PAYLOAD
            + "，应当原样显示为文字。\n")

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, corpus_dir):
    """The app served on a free loopback port over a fresh index of the default corpus (+ the XSS page)."""
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not installed ({CHROMIUM}); run scripts/browser_deps.sh "
                    "(apt-get install -y chromium fonts-wqy-microhei)")
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True).stdout if shutil.which("fc-list") else ""
    if not fonts.strip():
        pytest.skip("no CJK font: Chinese would render as boxes; apt-get install -y fonts-wqy-microhei")
    pytest.importorskip("playwright.sync_api")
    from index.ingest import load_documents
    from index.search import Searcher
    from index.store import build_index

    from app.serve import serve

    src = tmp_path_factory.mktemp("corpus")
    for f in corpus_dir.glob("*.txt"):
        shutil.copy(f, src / f.name)
    (src / "xss_demo.txt").write_text(XSS_PAGE, encoding="utf-8")
    if os.environ.get("POLICYQA_BROWSER_EMBEDDER", "fake") == "real":
        from index.embed import load_embedder

        embedder = load_embedder()
    else:
        from fakes import HashEmbedder

        embedder = HashEmbedder()
    index_dir = tmp_path_factory.mktemp("index") / "index"
    result = load_documents(sorted(src.glob("*.txt")), progress=False)
    build_index(result.documents, index_dir, embedder, progress=False)
    searcher = Searcher.load(index_dir, embedder=embedder)
    port = _free_port()
    demo = serve(index_dir, port=port, searcher=searcher, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="zh-CN")
        pg.set_default_timeout(20_000)
        # every Content-Security-Policy violation the page hits (the server sends a CSP with every response)
        pg.add_init_script("window.__csp = []; document.addEventListener('securitypolicyviolation',"
                           " e => window.__csp.push(e.effectiveDirective + ' ' + e.blockedURI));")
        pg.goto(app_url)
        pg.wait_for_selector("#pq-question textarea")
        yield pg
        browser.close()


def _last_request(page) -> str:
    return page.evaluate("() => document.querySelector('#pq-results .pq-pane')?.dataset.request ?? ''")


def _wait_new_results(page, previous: str) -> None:
    page.wait_for_function("p => { const e = document.querySelector('#pq-results .pq-pane');"
                           " return e && e.dataset.request && e.dataset.request !== p; }", arg=previous)


def _ask(page, question: str) -> float:
    """Type ``question``, press 检索, wait for the fresh answer; returns seconds from submit to results."""
    page.fill("#pq-question textarea", question)
    previous = _last_request(page)
    t0 = time.perf_counter()
    page.click("#pq-ask")
    _wait_new_results(page, previous)
    return time.perf_counter() - t0


def test_ask_example_question_shows_cited_cards(page):
    previous = _last_request(page)
    t0 = time.perf_counter()
    page.get_by_role("button", name=QUESTION).first.click()  # the example fills the box and runs the search
    page.wait_for_function("q => document.querySelector('#pq-question textarea').value === q", arg=QUESTION)
    _wait_new_results(page, previous)  # without pressing 检索
    seconds = time.perf_counter() - t0
    assert page.evaluate("() => document.querySelector('#pq-results .pq-pane').dataset.query") == QUESTION
    cards = page.locator("#pq-results .pq-card")
    assert cards.count() >= 3
    cites = [cards.nth(i).locator(".pq-cite").inner_text() for i in range(cards.count())]
    for i in range(3):
        assert "《" in cites[i] and "》" in cites[i] and " › " in cites[i], cites[i]
        assert cards.nth(i).locator(".pq-text").inner_text().strip()
    # the three plans that treat 医保异地结算 (Hunan, Chang-Zhu-Tan, Pingxiang) are all cited near the top
    top = " ".join(cites[:5])
    assert "湖南省对接粤港澳大湾区实施方案" in top and "长株潭" in top and "萍乡" in top, cites[:5]
    assert page.locator("#pq-results .pq-summary li a.pq-ref").count() >= 1  # 要点 with [n] markers
    assert page.locator("#pq-results mark").count() >= 1  # matched terms highlighted
    page.screenshot(path=str(SHOTS / "1_results.png"))
    page.screenshot(path=str(SHOTS / "1_results_full.png"), full_page=True)
    print(f"submit-to-results: {seconds:.2f}s")
    assert seconds < 10


def test_export_offers_markdown_and_csv(page):
    _ask(page, QUESTION)
    page.click("#pq-export")
    links = page.locator("#pq-files a")
    page.wait_for_function("() => document.querySelectorAll('#pq-files a').length >= 2")
    names = " ".join(links.nth(i).get_attribute("download") or links.nth(i).get_attribute("href") or ""
                     for i in range(links.count()))
    assert ".md" in names and ".csv" in names, names
    page.screenshot(path=str(SHOTS / "6_export.png"), full_page=True)
    # the link downloads in this browser (its session cookie) and nowhere else (app/sessions.py)
    href = page.evaluate("() => document.querySelector('#pq-files a').href")
    got = page.evaluate("async h => { const r = await fetch(h); return [r.status, await r.text()]; }", href)
    assert got[0] == 200 and "《" in got[1], got[0]
    import httpx

    assert httpx.get(href, timeout=10).status_code == 404


def test_the_page_works_under_its_content_security_policy(page, app_url):
    import httpx

    head = httpx.get(app_url, timeout=10).headers
    assert "frame-ancestors 'none'" in head["content-security-policy"] and head["x-frame-options"] == "DENY"
    _ask(page, QUESTION)  # scripts, styles, js_on_load handlers and the event stream all ran under the policy
    assert page.locator("#pq-results .pq-card").count() >= 1
    assert page.evaluate("window.__csp") == []


def test_open_full_text_scrolls_to_provision(page):
    _ask(page, QUESTION)
    first = page.locator("#pq-results .pq-card").first
    cite = first.locator(".pq-cite").inner_text()
    first.locator("button.pq-open").click()
    target = page.locator("#pq-document .pq-target")
    target.wait_for(state="visible")
    assert page.locator("#pq-document .pq-outline a").count() >= 1
    title = page.locator("#pq-document h2").inner_text()
    assert title and title in cite
    page.wait_for_timeout(400)  # the scroll runs after the re-render
    assert target.is_visible()
    box = target.bounding_box()
    assert box is not None and box["y"] < 1000  # scrolled into the viewport
    page.screenshot(path=str(SHOTS / "2_full_text.png"))
    page.get_by_role("tab", name="检索结果").click()


def test_region_filter_narrows_results(page):
    _ask(page, QUESTION)
    page.get_by_text("筛选与设置").click()
    page.click("#pq-f-region input")
    options = page.locator("ul[role='listbox'] li[role='option']")
    options.first.wait_for()
    labels = [options.nth(i).get_attribute("aria-label") for i in range(options.count())]
    label = next(t for t in labels if t and t != "全部")  # "湖南省（3 份）": the region and its document count
    region = label.split("（")[0]
    previous = _last_request(page)
    page.locator(f"ul[role='listbox'] li[aria-label='{label}']").click()
    _wait_new_results(page, previous)
    metas = page.locator("#pq-results .pq-card .pq-meta").all_inner_texts()
    assert metas, "filtered search returned no cards"
    assert all(region in m for m in metas), (region, metas)
    page.screenshot(path=str(SHOTS / "3_filtered.png"))
    # back to 全部 so later tests see every document
    previous = _last_request(page)
    page.click("#pq-f-region input")
    page.locator("ul[role='listbox'] li[aria-label='全部']").click()
    _wait_new_results(page, previous)


def _compare(page, question: str):
    """Ask ``question`` in the 对比 tab and return its columns once they are there."""
    page.fill("#pq-question textarea", question)
    page.get_by_role("tab", name="对比").click()
    page.click("#pq-run-compare")
    page.wait_for_selector("#pq-compare .pq-col")
    return page.locator("#pq-compare .pq-col")


def test_compare_view_side_by_side(page):
    cols = _compare(page, QUESTION)
    assert cols.count() >= 2
    assert page.locator("#pq-compare .pq-card .pq-cite").count() >= 2
    page.locator("#pq-compare").scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "4_compare.png"))
    page.get_by_role("tab", name="检索结果").click()


def test_markup_in_documents_and_queries_renders_as_text(page):
    _ask(page, "注入演示条款 页面转义")
    card = page.locator("#pq-results .pq-card").first
    assert "<script>" in card.locator(".pq-text").inner_text()
    assert page.locator("#pq-results .pq-text img").count() == 0
    card.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "5_xss_document_as_text.png"))
    _ask(page, '<img src=x onerror="window.__pwned=3">不存在的内容')
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#pq-results img").count() == 0
    page.screenshot(path=str(SHOTS / "5_xss_query_as_text.png"))


def test_markup_in_the_full_text_and_compare_views_renders_as_text(page):
    _ask(page, "注入演示条款 页面转义")
    page.locator("#pq-results .pq-card").first.locator("button.pq-open").click()
    from playwright.sync_api import expect

    # an earlier test's document may still be in the full-text view: wait for this document's text
    expect(page.locator("#pq-document .pq-target")).to_contain_text("<script>", timeout=20_000)
    assert page.locator("#pq-document img").count() == 0 and page.locator("#pq-document script").count() == 0
    page.get_by_role("tab", name="对比").click()
    page.click("#pq-run-compare")
    # the columns of the previous test's comparison may still be on screen: wait for this query's text to arrive
    expect(page.locator("#pq-compare")).to_contain_text("<script>", timeout=20_000)
    assert page.locator("#pq-compare img").count() == 0 and page.locator("#pq-compare script").count() == 0
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    page.get_by_role("tab", name="检索结果").click()
