"""Screenshots of the page for the README (docs/screenshots/): run against a server of the default corpus, e.g.
``policyqa serve --port 7871`` then ``python scripts/screenshots.py http://127.0.0.1:7871/`` (Debian's Chromium)."""
from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORTS = {"desktop": {"width": 1440, "height": 1000}, "phone": {"width": 390, "height": 844}}


def main(url: str) -> None:
    """Results, full text and 对比 on a desktop and a phone."""
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/lib/chromium/chromium", args=ARGS, headless=True)
        for name, viewport in VIEWPORTS.items():
            page = browser.new_page(viewport=viewport, locale="zh-CN")
            page.set_default_timeout(30_000)
            page.goto(url + "?q=" + quote("哪些条款涉及医保异地结算"))
            page.wait_for_selector("#pq-results .pq-card")
            page.wait_for_timeout(800)
            page.locator("#pq-results .pq-summary").scroll_into_view_if_needed()
            page.screenshot(path=str(OUT / f"{name}-results.png"))
            if name == "desktop":  # every card, the folded ones opened
                page.locator("#pq-results details.pq-more summary").click()
                page.screenshot(path=str(OUT / f"{name}-results-full.png"), full_page=True)
            page.locator("#pq-results .pq-card button.pq-open").first.click()
            page.wait_for_selector("#pq-document .pq-target")
            page.wait_for_timeout(800)
            page.locator("#pq-document .pq-facts").scroll_into_view_if_needed()
            page.screenshot(path=str(OUT / f"{name}-full-text.png"))
            page.get_by_role("tab", name="检索结果").click()
            page.fill("#pq-question textarea", "人才引进")
            page.get_by_role("tab", name="对比").click()
            page.click("#pq-run-compare")
            page.wait_for_selector("#pq-compare .pq-col")
            page.wait_for_timeout(800)
            page.locator("#pq-compare").scroll_into_view_if_needed()
            page.screenshot(path=str(OUT / f"{name}-compare.png"), full_page=name == "desktop")
            page.close()
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:7860/")
