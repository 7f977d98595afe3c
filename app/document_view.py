"""The full-text view: the document's facts, a collapsible 目录, the text with the chosen provision marked, and a
warning when the source is scrambled (headings repeated or out of order, as in a bad web scrape)."""
from __future__ import annotations

import re

from app.facts import facts_panel
from app.highlight import _e, clip, highlight
from index.types import Document

_NUMBERED = re.compile(r"^\s*(?:第(?P<ch>[一二三四五六七八九十百]+)(?P<unit>[章节条])|(?P<cn>[一二三四五六七八九十]+)、"
                       r"|[（(](?P<pcn>[一二三四五六七八九十]+)[）)]|(?P<ar>\d{1,3})[、.．])")
_CN = {c: i for i, c in enumerate("一二三四五六七八九十", start=1)}
SCRAMBLED_NOTE = ("本文件的来源文本有重复或顺序错乱的段落（目录中标题重复或编号倒序），可能是网页抓取所致；"
                  "引用前请核对正式文本。")


def outline(document: Document) -> list[tuple[int, str, int]]:
    """The heading tree as (depth, heading, index of the first provision under it), in document order."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for n, prov in enumerate(document.provisions):
        for depth in range(1, len(prov.path) + 1):
            key = prov.path[:depth]
            if key not in seen:
                seen.add(key)
                out.append((depth - 1, prov.path[depth - 1], n))
    return out


def _cn_value(word: str) -> int:
    if len(word) == 1:
        return _CN.get(word, 0)
    if word.startswith("十"):
        return 10 + _CN.get(word[1:], 0)
    if len(word) == 2 and word[1] == "十":
        return 10 * _CN.get(word[0], 0)
    if len(word) == 3 and word[1] == "十":
        return 10 * _CN.get(word[0], 0) + _CN.get(word[2], 0)
    return 0


def _number(heading: str) -> tuple[str, int] | None:
    """(numbering style, value) of a numbered heading: ("章", 3) for 第三章, ("、", 2) for 二、, ("1", 4) for 4、."""
    m = _NUMBERED.match(heading)
    if not m:
        return None
    if m.group("ar"):
        return "1", int(m.group("ar"))
    if m.group("ch"):
        return m.group("unit"), _cn_value(m.group("ch"))
    if m.group("cn"):
        return "、", _cn_value(m.group("cn"))
    return "（", _cn_value(m.group("pcn"))


def scrambled(document: Document) -> bool:
    """Whether the outline repeats a heading under the same parent, or numbers siblings backwards (三、 before 二、)."""
    entries = outline(document)
    seen: set[tuple[int, str]] = set()
    last: dict[tuple[int, str], int] = {}
    for depth, heading, _ in entries:
        key = (depth, re.sub(r"\s+", "", heading))
        if key in seen and _number(heading):
            return True
        seen.add(key)
        num = _number(heading)
        if num is None:
            continue
        slot = (depth, num[0])
        if num[1] and slot in last and num[1] < last[slot] and num[1] != 1:
            return True
        last[slot] = num[1]
    return False


def render_document(document: Document, provision_id: str | None = None, query: str = "") -> str:
    """The whole document with its facts and outline; the chosen provision highlighted and marked as the scroll
    target."""
    head = [f"<h2>{_e(document.title)}</h2>", facts_panel(document)]
    if scrambled(document):
        head.append(f'<div class="pq-warn pq-scrambled">{_e(SCRAMBLED_NOTE)}</div>')
    target_path = next((p.path for p in document.provisions if p.id == provision_id), None)

    def here(depth: int, n: int) -> str:  # the headings above the target provision are marked in the outline
        key = document.provisions[n].path[: depth + 1]
        return " pq-here" if target_path is not None and target_path[: depth + 1] == key else ""

    nav = "".join(
        f'<a class="pq-ol pq-ol-{min(depth, 3)}{here(depth, n)}" href="#pq-prov-{n}" data-anchor="pq-prov-{n}">'
        f"{_e(clip(title, 40))}</a>"
        for depth, title, n in outline(document)
    )
    body, pos = [], 0
    for n, prov in enumerate(document.provisions):
        if prov.start < pos:  # overlapping offsets would duplicate text; show the provision alone
            continue
        body.append(_e(document.text[pos : prov.start]))
        target = prov.id == provision_id
        inner = highlight(document.text[prov.start : prov.end], query) if target else _e(document.text[prov.start : prov.end])
        units = "".join(f'<span class="pq-units"><b>{label}：</b>{_e(v)}</span>'
                        for label, v in (("牵头单位", prov.lead_units), ("责任单位", prov.resp_units)) if v and target)
        body.append(f'<span id="pq-prov-{n}" class="pq-prov{" pq-target" if target else ""}">{inner}{units}</span>')
        pos = prov.end
    body.append(_e(document.text[pos:]))
    # <details>: the 目录 folds away on a phone (app/ui.py DOCUMENT_JS closes it on narrow screens)
    nav_html = f'<details class="pq-outline" open><summary>目录</summary>{nav}</details>' if nav else ""
    return (f'<div class="pq-doc">{"".join(head)}<div class="pq-doc-grid">{nav_html}'
            f'<div class="pq-doc-body">{"".join(body)}</div></div></div>')
