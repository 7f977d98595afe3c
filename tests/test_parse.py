"""Parser and cleanup: fixture outlines, the seed corpus' golden outlines, and "no text lost" properties."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from index.clean import clean_text, is_chrome
from index.meta import extract_doc_number, extract_units
from index.parse import detect_heading, lead_sentence, parse_document, parse_text
from index.read import read_path
from index.types import Document

FIXTURES = Path(__file__).parent / "fixtures" / "mini"
GOLDEN = Path(__file__).parent / "golden"
CORPUS = Path(__file__).resolve().parent.parent / "corpus"
PAGE_MARKER = re.compile(r"[—－-]\s*\d{1,3}\s*[—－-]\s*$|^\s*[—－-]\s*\d{1,3}\s*[—－-]", re.MULTILINE)
CHROME_WORDS = ("服务热线", "您当前位置", "扫描二维码", "ICP备", "版权所有", "运营支持", "浏览:", "贝伦斯主页")


def _doc(name: str, root: Path = FIXTURES) -> Document:
    return parse_document(read_path(root / name, root)[0])


def _paths(doc: Document) -> list[str]:
    return [" › ".join(p.path) for p in doc.provisions]


def outline(doc: Document) -> dict:
    """The golden-file view of a parsed document: metadata and one line per provision."""
    return {
        "id": doc.id, "title": doc.title, "doc_number": doc.doc_number, "issuer": doc.issuer, "date": doc.date,
        "region": doc.region, "url": doc.url,
        "provisions": [{"path": list(p.path), "chars": len(p.text), "head": p.text[:24],
                        "lead_units": p.lead_units, "resp_units": p.resp_units} for p in doc.provisions],
    }


def test_law_markdown_articles_with_chapter_path():
    doc = _doc("law.md")
    assert doc.title == "示例市物业管理条例" and doc.date == "2023-06-01"
    assert _paths(doc)[0] == "第一编 总则 › 第一章 一般规定 › 第一条"
    art3 = next(p for p in doc.provisions if p.path[-1] == "第三条")
    assert art3.path == ("第一编 总则", "第二章 业主大会", "第一节 业主", "第三条")
    assert "（二）提议召开业主大会会议" in art3.text  # 项 stay inside their article
    art2 = next(p for p in doc.provisions if p.path[-1] == "第二条")
    assert "本条例所称物业管理" in art2.text  # the second 款 belongs to the article
    assert _paths(doc)[-1] == "第二编 附则 › 第三章 附则 › 第六条"
    assert not any("INFO END" in p.text or "常务委员会第七次会议" in p.text for p in doc.provisions)


def test_plan_items_lead_sentences_and_units():
    doc = _doc("plan.txt")
    assert doc.title == "示例省数字经济发展行动方案（2023—2025年）"
    assert doc.doc_number == "示政办发〔2023〕12号" and doc.issuer == "示例省人民政府办公厅" and doc.date == "2023-04-18"
    item1 = next(p for p in doc.provisions if p.path and p.path[-1].startswith("1．"))
    assert item1.path == ("二、重点任务", "（一）夯实数字基础设施", "1．加快5G网络建设")
    assert (item1.lead_units, item1.resp_units) == ("省通信管理局", "各市州人民政府")
    item2 = next(p for p in doc.provisions if p.path and p.path[-1] == "2．建设算力中心")
    assert item2.text.endswith("加快存量数据中心绿色化改造。")  # a follow-on paragraph stays with its item
    assert ("一、总体要求", "坚持创新驱动") in [p.path for p in doc.provisions]
    item3 = next(p for p in doc.provisions if p.path and p.path[-1] == "3．壮大软件产业")
    assert item3.lead_units == "省工业和信息化厅、省科技厅" and item3.resp_units == "省发展改革委"
    assert not any("主动公开" in p.text or p.text.startswith("示例省人民政府办公厅") for p in doc.provisions)


def test_web_page_main_text_without_chrome():
    doc = _doc("web.html")
    assert doc.title == "示例市人民政府关于做好春季农业生产工作的通知"
    assert doc.url == "http://www.example.gov.cn/zwgk/2022/0301/1.html"
    assert doc.doc_number == "示政发〔2022〕3号" and doc.date == "2022-03-01" and doc.region == "示例市"
    assert ["一、稳定粮食播种面积", "二、加强农资供应保障"] == [p.path[0] for p in doc.provisions if p.path]
    # inline tags do not break a paragraph
    assert any(p.text == "各县（区）要把粮食生产目标任务分解到乡镇，确保播种面积只增不减。" for p in doc.provisions)
    for word in ("服务热线", "您当前位置", "版权所有", "运营支持", "ICP备", "二维码", "不应出现的脚本文字", "浏览"):
        assert word not in doc.text


def test_pdf_style_text_is_joined_and_page_numbers_removed():
    doc = _doc("pdf_style.txt")
    assert doc.doc_number == "示县政发〔2021〕7号" and doc.date == "2021-05-08"
    item = next(p for p in doc.provisions if p.path and p.path[-1] == "1．壮大茶叶产业")
    assert "带动农户增收致富，实现茶叶综合产值30亿元。" in item.text
    assert "\n" not in item.text and "— 2 —" not in doc.text
    goal = next(p for p in doc.provisions if p.path == ("一、工作目标",))
    assert "8%以上，农村人居环境明显改善，乡村治理体系" in goal.text


@pytest.mark.parametrize("line,expected", [
    ("第一章 总则", "第一章 总则"), ("## 第二章 业主大会", "第二章 业主大会"), ("第十条 业主应当…", "第十条"),
    ("一、总体要求", "一、总体要求"), ("（五）深化公共服务对接合作。", "（五）深化公共服务对接合作"),
    ("(一)总体思路", "(一)总体思路"), ("18．强化医疗卫生合作。加强协作。", "18．强化医疗卫生合作"),
    ("1. 打造区域综合交通网络。提升。", "1. 打造区域综合交通网络"), ("附件1", "附件1"),
    ("2020年，全省完成目标。", None), ("1.5倍以上的增长。", None),
])
def test_heading_levels(line, expected):
    heading = detect_heading(line)
    assert (heading.label if heading else None) == expected


def test_lead_sentence():
    assert lead_sentence("区位交通优势凸显。长株潭位于京广经济带") == "区位交通优势凸显"
    assert lead_sentence("一轴:串联三市主城区的湘江发展轴。依托") == "一轴"
    assert lead_sentence("以习近平新时代中国特色社会主义思想为指导，深入贯彻党的十九大精神，全面落实。其余") is None
    assert lead_sentence("区位交通优势凸显。") is None  # nothing after it: a plain paragraph


def test_cleanup_rules():
    assert clean_text("第一段落内容很长很长。\n— 11 —\n第二段。") == "第一段落内容很长很长。\n\n第二段。"
    assert clean_text("湘政办发〔2020〕8 号\n建设湖南至大湾区 3—5 小时通达圈。") == "湘政办发〔2020〕8号\n\n建设湖南至大湾区3—5小时通达圈。"
    scrape = "\n".join(f"第{n}段落的内容相当长，足以算作一个完整的句子。" for n in "一二三四")
    assert clean_text(scrape + "\n" + scrape) == scrape.replace("\n", "\n\n")  # a scrape that repeats blocks
    law = "（三）法律、行政法规规定的其他情形。\n第二条 内容。\n（三）法律、行政法规规定的其他情形。"
    assert clean_text(law).count("其他情形") == 2  # a clause that a law repeats is kept
    assert clean_text("县级以上人民政府应当开通服务热线：12345，受理投诉。") != ""  # content, not chrome
    toc = "目 录\n一、总体要求......................3\n（一）指导思想 ........ 3\n一、总体要求\n加快发展。"
    assert clean_text(toc) == "一、总体要求\n\n加快发展。"
    assert is_chrome("服务热线:  400-606-6048") and is_chrome("ICP备案号:湘ICP备10209074号-26 号")
    assert not is_chrome("加强与大湾区在环境保护科学基础研究方面合作。")


def test_doc_number_and_units():
    assert extract_doc_number("湘政办发〔2020〕8 号") == "湘政办发〔2020〕8号"
    assert extract_doc_number("通知湘政发〔2016〕21号各市州") == "湘政发〔2016〕21号"
    assert extract_doc_number("根据《通知》(赣府厅字〔2018〕120号)精神") is None  # a citation, not its own number
    assert extract_units("…互联互通。(牵头单位:市卫健委、市医保局;责任单位:有关县区人民政府)") == (
        "市卫健委、市医保局", "有关县区人民政府")
    assert extract_units("（省发改委牵头负责，省交通运输厅、省商务厅等参与）") == ("省发改委", "省交通运输厅、省商务厅")


def test_provision_ids_stable_and_offsets_exact():
    a, b = _doc("plan.txt"), _doc("plan.txt")
    assert [p.id for p in a.provisions] == [p.id for p in b.provisions]
    assert len({p.id for p in a.provisions}) == len(a.provisions)
    assert all(p.id.startswith("plan#") for p in a.provisions)
    for doc in (a, _doc("law.md"), _doc("web.html"), _doc("pdf_style.txt")):
        for p in doc.provisions:
            assert doc.text[p.start:p.end] == p.text and p.text.strip() == p.text


# --- the seed corpus -------------------------------------------------------------------------------------------

SEEDS = sorted(p.name for p in CORPUS.glob("*.txt"))


@pytest.mark.parametrize("name", SEEDS)
def test_seed_outline_matches_golden(name):
    doc = _doc(name, CORPUS)
    got = outline(doc)
    golden = GOLDEN / f"{Path(name).stem}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    assert got == json.loads(golden.read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", SEEDS)
def test_seed_provisions_are_clean(name):
    doc = _doc(name, CORPUS)
    assert doc.provisions
    for p in doc.provisions:
        assert doc.text[p.start:p.end] == p.text
        assert not PAGE_MARKER.search(p.text), p.text
        assert not any(word in p.text for word in CHROME_WORDS), p.text


def test_seed_pdf_item_18():
    doc = _doc("001_bf613616185b5f44.txt", CORPUS)
    item = next(p for p in doc.provisions if p.path and p.path[-1].startswith("18．"))
    assert item.path == ("二、重点任务", "（五）深化公共服务对接合作", "18．强化医疗卫生合作")
    assert "实现异地就医即时结算并报销医保费用" in item.text and "联合培养全科医生" in item.text


def test_seed_pdf_closing_paragraphs_are_not_in_item_30():
    # The plan has no "三、保障措施" heading (neither rendering carries one): its two closing paragraphs follow
    # item 30 directly. They are document-level provisions, not part of item 30.
    for name in ("000_f620c4800d4537e4.txt", "001_bf613616185b5f44.txt"):
        doc = _doc(name, CORPUS)
        item30 = next(p for p in doc.provisions if p.path and p.path[-1].startswith("30"))
        assert item30.text.endswith("环保产业等方面合作。") and "领导小组" not in item30.text
        closing = doc.provisions[-2:]
        assert [p.path for p in closing] == [(), ()]
        assert closing[0].text.startswith("省泛珠三角区域合作领导小组负责统筹推进")
        assert closing[1].text == "本方案自发布之日起施行。"
        assert "保障措施" not in doc.text


def test_seed_pdf_full_line_ending_in_a_stop_ends_the_paragraph():
    # "…跨国供应链管理中心。" fills its line (the 。 hangs as the 29th character) and the item goes on in the next
    # line; the cleaner cannot tell this from a paragraph end (see clean.join_hard_wraps) and keeps a break, but the
    # item keeps both paragraphs.
    doc = _doc("001_bf613616185b5f44.txt", CORPUS)
    by_number = {p.path[-1].split("．")[0]: p for p in doc.provisions if p.path and "．" in p.path[-1]}
    assert "跨国供应链管理中心。\n\n推进物联网等新一代信息技术" in by_number["8"].text
    assert by_number["23"].text.endswith("提升投资贸易便利化水平。\n\n加强知识产权保护信息互通共享。")
    assert len(by_number) == 30


def test_full_line_ending_in_a_stop_ends_its_paragraph_even_when_the_stop_hangs():
    body = "甲乙丙丁戊己庚辛壬癸" * 2
    lines = [body] * 9 + [body + "。", body, "继续。"]
    cleaned = clean_text("\n\n".join(lines)).split("\n\n")
    assert cleaned == [body * 10 + "。", body + "继续。"]


def test_closing_paragraphs_detached_only_when_siblings_rarely_have_more():
    items = "\n".join(f"{n}．事项{n}。内容{n}，具体做法。" for n in range(1, 5))
    closing = "各地要加强组织领导，抓好落实。\n本方案自印发之日起施行。"
    provisions = parse_text("d", clean_text(f"一、重点任务\n{items}\n{closing}"))
    assert [p.path for p in provisions[-3:]] == [("一、重点任务", "4．事项4"), (), ()]
    # when one of 3 earlier items has a follow-on paragraph (款), so may the last one: nothing is detached
    with_kuan = items.replace("内容2，具体做法。", "内容2，具体做法。\n第二款的内容，继续说明。")
    provisions = parse_text("d", clean_text(f"一、重点任务\n{with_kuan}\n{closing}"))
    assert provisions[-1].path == ("一、重点任务", "4．事项4") and provisions[-1].text.endswith("起施行。")
    # a second paragraph that does not open like a closing stays with the last item (a 款), the closing goes
    provisions = parse_text("d", clean_text(f"一、重点任务\n{items}\n对调解后仍未达成一致的，依法处理。\n{closing}"))
    assert provisions[-3].text.endswith("\n\n对调解后仍未达成一致的，依法处理。")
    assert [p.path for p in provisions[-2:]] == [(), ()]
    # two items are too few to tell
    provisions = parse_text("d", clean_text(f"一、重点任务\n1．甲。内容。\n2．乙。内容。\n{closing}"))
    assert provisions[-1].path == ("一、重点任务", "2．乙")


def test_seed_scrape_keeps_each_paragraph_once():
    doc = _doc("002_2d4ce1e0f90a91da.txt", CORPUS)
    sentences = [s for p in doc.provisions for s in re.findall(r"[^。]{20,}。", "".join(p.text.split()))]
    assert len(sentences) == len(set(sentences))
    assert doc.text.count("全面贯彻党的十八大和十八届三中、四中、五中全会精神") == 1


def test_seed_scrape_order_is_kept_not_guessed():
    # drop_repeats removes repeats but does not sort by numbering (see its docstring): the scrape's own order stays
    raw = read_path(CORPUS / "002_2d4ce1e0f90a91da.txt", CORPUS)[0]
    doc = parse_document(raw)
    squashed = "".join(raw.text.split())
    sentences = [s for p in doc.provisions for s in re.findall(r"[^。）]{20,}。", "".join(p.text.split()))]
    firsts = [squashed.find(s) for s in sentences]  # where each kept sentence first occurs in the scrape
    assert len(sentences) > 50 and -1 not in firsts and firsts == sorted(firsts)


def test_seed_plan_lead_sentences():
    doc = _doc("003_52071bc060105621.txt", CORPUS)
    assert ("第一章 规划背景", "第一节 发展基础", "区位交通优势凸显") in [p.path for p in doc.provisions]


def test_seed_pingxiang_item_10_units():
    doc = _doc("004_5bed96e789233213.txt", CORPUS)
    item = next(p for p in doc.provisions if p.path and p.path[-1].startswith("10."))
    assert item.lead_units == "市卫健委、市医保局"
    assert item.resp_units.startswith("有关县区人民政府")


DOCS = Path(__file__).parent / "fixtures" / "docs"
REAL = [(CORPUS, name) for name in SEEDS] + [(DOCS, "notice.pdf"), (DOCS, "notice.docx")] + [
    (FIXTURES, name) for name in ("law.md", "plan.txt", "web.html", "pdf_style.txt")]


@pytest.mark.parametrize("root,name", REAL, ids=[name for _, name in REAL])
def test_no_text_lost_in_real_documents(root, name):
    """What the provisions leave out of a cleaned document is only what parse's docstring says it leaves out."""
    from index.parse import _is_front_matter, _is_signature

    doc = _doc(name, root)
    rest = doc.text
    for p in sorted(doc.provisions, key=lambda p: -p.start):
        rest = rest[:p.start] + "\n" + rest[p.end:]
    left = [line for line in rest.split("\n") if line.strip()]
    for line in left:  # heading lines (kept in the paths), signature lines, front matter (issuer, title, 文号)
        assert detect_heading(line) is not None or _is_signature(line) or _is_front_matter(line), line
        assert not re.search(r"[。！？；]", line) or detect_heading(line) is not None, line  # no body sentence


# --- properties ------------------------------------------------------------------------------------------------

_CJK = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF), min_size=1, max_size=12)
_NUM = "一二三四五六七八九十"


@st.composite
def documents(draw):
    """A document assembled from headings and body paragraphs whose kinds are known in advance."""
    lines, bodies, headings = [], [], []
    for i in range(draw(st.integers(1, 4))):
        heading = f"{_NUM[i]}、{draw(_CJK)}"
        lines.append(heading)
        headings.append(heading)
        for j in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(["plain", "item", "lead"]))
            sentences = "".join(draw(_CJK) + draw(st.sampled_from("，；")) for _ in range(draw(st.integers(2, 4))))
            body = sentences + draw(_CJK) + "。"
            if kind == "item":
                body = f"{j + 1}．{draw(_CJK)}。{body}"
            elif kind == "lead":
                body = f"{draw(_CJK)}。{body}"
            lines.append(body)
            bodies.append(body)
    sep = draw(st.sampled_from(["\n", "\n\n", "\r\n"]))
    return sep.join(lines), bodies, headings


@settings(max_examples=150, deadline=None)
@given(documents())
def test_no_text_lost(case):
    text, bodies, headings = case
    cleaned = clean_text(text)
    provisions = parse_text("doc", cleaned)
    if not bodies:  # headings with nothing under them are content: nothing may vanish
        assert "".join(p.text for p in provisions).replace("\n", "") == cleaned.replace("\n", "")
        return
    covered = "".join(p.text for p in provisions)
    for body in bodies:  # every body paragraph is inside exactly one provision (repeats are dropped by design)
        assert body in covered or cleaned.count(body) == 0 and text.count(body) > 1
    closing = len(provisions)  # the trailing document-level provisions (parse._detach_closing) start here
    while closing > 1 and not provisions[closing - 1].path:
        closing -= 1
    for n, p in enumerate(provisions):
        assert cleaned[p.start:p.end] == p.text
        # under a heading, or a heading line with nothing under it, which is then content, or a closing
        # paragraph after the last item
        assert p.path and p.path[0] in headings or p.text in headings or (n >= closing and p.text in bodies)
    # everything outside the provisions is heading lines (kept in the paths) or blank
    rest = cleaned
    for p in sorted(provisions, key=lambda p: -p.start):
        rest = rest[:p.start] + rest[p.end:]
    for line in rest.split("\n"):
        assert not line.strip() or line in headings


@st.composite
def wrapped_pages(draw):
    """PDF-style text: paragraphs hard-wrapped at a fixed width, blank lines between lines, page markers inside."""
    width = draw(st.integers(20, 34))
    paragraphs = []
    for _ in range(draw(st.integers(3, 6))):
        clauses = [draw(_CJK) + draw(_CJK) for _ in range(draw(st.integers(3, 8)))]
        paragraphs.append("，".join(clauses) + "。")
    lines = []
    for para in paragraphs:
        lines.extend(para[i:i + width] + " " for i in range(0, len(para), width))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(1, len(lines) - 1))
        lines.insert(at, f"— {draw(st.integers(1, 99))} — ")
    return "\n\n".join(lines), paragraphs, width


@settings(max_examples=150, deadline=None)
@given(wrapped_pages())
def test_hard_wraps_joined_and_page_markers_removed(case):
    text, paragraphs, width = case
    lines_total = sum(-(-len(p) // width) for p in paragraphs)
    full_lines = sum(len(p) // width for p in paragraphs)
    cleaned = clean_text(text)
    assert "—" not in cleaned  # page markers gone, even between two halves of a sentence
    assert cleaned.replace("\n", "") == "".join(paragraphs)  # nothing lost, nothing reordered
    if full_lines >= 8 and full_lines > lines_total / 2:  # enough full lines to recognise the fixed width
        for para in paragraphs:
            cuts = range(width, len(para), width)
            if not any(para[c - 1] in "。" for c in cuts):  # a wrap right after 。 is a paragraph end by design
                assert para in cleaned.split("\n")
