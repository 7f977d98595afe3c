"""Text cleanup applied by content, not by file type: whitespace, page numbers, hard wraps, site chrome, repeats.

``clean_text`` is pure; the parser's character offsets point into its output.  Full-width punctuation is
kept as it is (no NFKC of the text itself: the official rendering writes （五） and 18．); only the
whitespace characters NFKC would fold are folded.  NFKC is used to *compare* renderings (index.dedup).
"""
from __future__ import annotations

import re
from collections import Counter

# Whitespace that NFKC would fold to a plain space (ideographic space, em/en spaces, NBSP, thin spaces).
_SPACES = re.compile(r"[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000\t\f\v]")
_INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]")
# Page-number lines of typeset 公文 ("— 11 —", "- 3 -", "第 3 页 共 10 页", "3/10").
_PAGE_LINE = re.compile(
    r"^(?:[—–\-－─]{1,2}\s*\d{1,4}\s*[—–\-－─]{1,2}|第\s*\d{1,4}\s*页(?:\s*[,，/]?\s*共\s*\d{1,4}\s*页)?"
    r"|\d{1,4}\s*/\s*\d{1,4})$"
)
# The same marker glued inside a line by a text extractor; only with spaces around it so "3—5—" ranges survive.
_PAGE_INLINE = re.compile(r"(?<=\S) [—–－─]{1,2} ?\d{1,4} ?[—–－─]{1,2} (?=\S)")
_CJK = r"\u3400-\u9fff\uf900-\ufaff"
_FULLWIDTH_PUNCT = r"\u3000-\u303f\uff00-\uffef—“”‘’…"
# PDF text layers put spaces around digits inside Chinese ("8 号", "2020 年", "3—5 小时").
_DIGIT_SPACE = re.compile(rf"(?<=[{_CJK}{_FULLWIDTH_PUNCT}]) (?=\d)|(?<=\d) (?=[{_CJK}{_FULLWIDTH_PUNCT}])")

#: Lines that belong to a web site's frame, not to the document (matched anywhere in a short line).
CHROME = re.compile(
    r"服务热线\s*[:：]|您当前位置|当前位置\s*[:：]|扫描二维码|二维码下载|ICP备|ICP证|公网安备|版权所有|运营支持\s*[:：]"
    r"|技术支持\s*[:：]|主办单位\s*[:：]|承办单位\s*[:：]|指导建设单位|网站地图|联系我们|打印本页|关闭窗口|【\s*打印\s*】"
    r"|【\s*关闭\s*】|字号[:：]?\s*[【\[]?\s*大|分享到[:：]?|^浏览(?:次数)?\s*[:：]\s*\d+|^来源\s*[:：]|^原文(?:链接|地址)\s*[:：]"
    r"|^发布(?:时间|日期)\s*[:：]|^阅读(?:次数|量)?\s*[:：]\s*\d+|^\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}(?::\d{2})?)?$"
)
# Furniture that trails the last paragraph of a page: home-page links, app names, attachment file names.
_TRAILER = re.compile(r"主页|首页|APP|App|客户端|返回顶部|公众号|微信|微博|收藏本页|^\S{1,60}\.(?:doc|docx|xls|xlsx|pdf|wps|zip|rar|ofd)$")
# Table-of-contents lines ("一、总体要求......3") and the 目录 heading: navigation, not text.
_TOC_LINE = re.compile(r"^(?:目\s*录|.{1,80}?(?:\.{4,}|…{2,}|·{4,}|－{4,})\s*\d{1,4})\s*$"
                       r"|^\|[\s\-:|]+\|$")  # (and the rule line under a Markdown table header)
_ATTACHMENT_FILE = re.compile(r"^\S{1,60}\.(?:doc|docx|xls|xlsx|pdf|wps|zip|rar|ofd)$", re.IGNORECASE)
_SENTENCE_END = "。！？；：…”’」』）)"
# Heading markers, used here only to avoid joining a heading onto the previous line and to split run-on scrapes.
_CN_NUM = "一二三四五六七八九十百零〇"
HEADING_START = re.compile(
    rf"^(?:#{{1,6}}\s|第[{_CN_NUM}\d]+[编章节条]|[{_CN_NUM}]+、|[（(][{_CN_NUM}]+[）)]|\d{{1,3}}[\.．、](?!\d)|附件)"
)
_RUNON_SPLIT = re.compile(
    rf"(?<=[。！？])(?=[{_CN_NUM}]{{1,3}}、|[（(][{_CN_NUM}]{{1,3}}[）)]|\d{{1,2}}[、．](?!\d))"
    rf"|(?<=[）)])(?=[{_CN_NUM}]{{1,3}}、|[（(][{_CN_NUM}]{{1,3}}[）)]\S|\d{{1,2}}[、．](?!\d))"
)
# A notice's heading block glued into one line: "…的通知发布日期:2016-10-24…的通知湘政发〔2016〕21号各市州…：现将…".
_HEADER_SPLIT = re.compile(r"(?<=的通知)(?=[^\s，。；、）)”》])|(?<=[：:])(?=现将|现就|现把|根据|为了?)"
                           r"|(?<=[。！？])(?=[^，。；《》]{2,30}关于印发)")
# A signature glued between paragraphs: "…区域。湖南省人民政府2016年10月24日（此件主动公开）湖南省…".
_SIGNATURE = re.compile(r"(?:[\u4e00-\u9fff]{2,20}?(?:人民政府|办公厅|办公室|委员会))?"
                        r"\s?\d{4}年\d{1,2}月\d{1,2}日\s?[（(]此件[^）)]{0,10}[）)]")
_DOC_NUMBER_LINE = re.compile(r"^[\u4e00-\u9fff]{1,12}[〔［\[【﹝]\d{4}[〕］\]】﹞]\d{1,4}\s?号$")  # a 文号 on its own line
_DOC_NUMBER_END = re.compile(r"[〔［\[【﹝]\d{4}[〕］\]】﹞]\d{1,4}号(?=[\u4e00-\u9fff])")
_INLINE_DATE_LABEL = re.compile(r"发布(?:日期|时间)\s*[:：]\s*\d{4}[-年./]\d{1,2}[-月./]\d{1,2}日?"
                                r"(?:\s*\d{1,2}:\d{2}(?::\d{2})?)?")
# A responsibility note such as "（省发改委牵头负责）" closes its paragraph; text glued after it starts a new one.
_NOTE_END = re.compile(r"[（(][^（()）]{2,80}?(?:负责|参与)[）)](?=[^\s，。；、）)])")
# "一、总体要求（一）指导思想。" glued together: the top heading has no punctuation before the sub-marker.
_GLUED_SUBHEAD = re.compile(rf"^([{_CN_NUM}]{{1,3}}、[^，。；：,;:（(]{{1,20}})(?=[（(][{_CN_NUM}]{{1,3}}[）)])")
_SENTENCE = re.compile(r"[^。！？]*[。！？]+|[^。！？]+$")


def normalize_whitespace(text: str) -> str:
    """Unify newlines, drop invisible characters, fold exotic spaces, strip every line, close digit gaps."""
    text = _INVISIBLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _SPACES.sub(" ", text)
    lines = [re.sub(r" {2,}", " ", line).strip() for line in text.split("\n")]
    return "\n".join(_DIGIT_SPACE.sub("", line) for line in lines)


def is_page_marker(line: str) -> bool:
    """True for a line that is only a page number such as "— 11 —"."""
    return bool(_PAGE_LINE.match(line.strip()))


def is_chrome(line: str) -> bool:
    """True for a line of web-site furniture (hotline, breadcrumbs, QR codes, ICP number, copyright).

    A line that ends like a sentence (。；！？) is content even when it mentions a 服务热线 or a QR code.
    """
    s = line.strip().lstrip("•·●▪-* ")
    if len(s) > 120 or (s and s[-1] in "。；！？"):
        return False
    return bool(CHROME.search(s) or _ATTACHMENT_FILE.match(s))


def _ends_sentence(line: str) -> bool:
    return bool(line) and line[-1] in _SENTENCE_END


def wrap_width(lines: list[str]) -> int | None:
    """The fixed line width of hard-wrapped text (PDF extraction), or None when the text is not hard-wrapped.

    Hard-wrapped text has many lines of nearly the same length that stop mid-sentence.
    """
    lengths = [len(line) for line in lines if line]
    if len(lengths) < 8:
        return None
    mode, _ = Counter(lengths).most_common(1)[0]
    if not 15 <= mode <= 120:
        return None
    width = max(n for n in lengths if n <= mode + 2)
    near = [line for line in lines if line and width - 3 <= len(line) <= width + 2]
    open_ended = [line for line in near if not _ends_sentence(line)]
    return width if len(near) >= 0.3 * len(lengths) and len(open_ended) >= 0.5 * len(near) else None


def join_hard_wraps(lines: list[str]) -> list[str]:
    """Join lines that a fixed-width layout broke inside a paragraph; blank lines there carry no meaning.

    A full line continues on the next one unless it ends a sentence.  A full line that ends with 。 is taken as a
    paragraph end, also when the 。 hangs into the margin as one character more than the usual width: in
    湘政办发〔2020〕8号 (seed 001) three such lines are continuations ("…跨国供应链管理中心。" / "推进物联网…"), but
    ../shared/corpora/policies.jsonl has 79 such lines and of the 30 we read nearly all end a paragraph
    ("…优化康复效果。" / "应用场景：…"), so a rule that joined them would merge far more paragraphs than it repairs.
    """
    width = wrap_width(lines)
    if width is None:
        return lines
    out: list[str] = []
    joinable = False  # whether the last output line continues on the next non-blank line
    for line in lines:
        if not line:
            continue
        if joinable and out and not HEADING_START.match(line) and not _DOC_NUMBER_LINE.match(line):
            out[-1] += line
        else:
            out.append(line)
        last = out[-1]
        joinable = len(line) >= width - 4 and not _ends_sentence(last)
    return out


def split_runons(line: str) -> list[str]:
    """Split a scraped line that glued several paragraphs together (before headings, after 负责/参与 notes,
    between the lines of a notice's heading block)."""
    if len(line) < 60 and not _GLUED_SUBHEAD.match(line):
        return [line]
    line = _INLINE_DATE_LABEL.sub("", line)  # page furniture; index.meta reads the date from the raw text
    cuts = sorted({m.end() for m in _NOTE_END.finditer(line)} | {m.start() for m in _RUNON_SPLIT.finditer(line)}
                  | {m.start() for m in _HEADER_SPLIT.finditer(line)}
                  | {m.end() for m in _DOC_NUMBER_END.finditer(line)}
                  | ({i for m in _SIGNATURE.finditer(line) for i in m.span()} if "此件" in line else set()))
    bounds = [0, *[c for c in cuts if 0 < c < len(line)], len(line)]
    parts = [line[a:b] for a, b in zip(bounds, bounds[1:]) if line[a:b]]
    out: list[str] = []
    for part in parts:
        m = _GLUED_SUBHEAD.match(part)
        out.extend([m.group(1), part[m.end():]] if m and part[m.end():] else [part])
    return out


def _strip_edges(lines: list[str]) -> list[str]:
    """Drop site chrome, page markers and table-of-contents lines, and the furniture trailing a page's last paragraph."""
    kept = [line for line in lines if not (line and (is_chrome(line) or is_page_marker(line) or _TOC_LINE.match(line)))]
    end = len(kept)
    while end and (not kept[end - 1] or (len(kept[end - 1]) <= 40 and _TRAILER.search(kept[end - 1])
                                          and not re.search(r"[。！？；]", kept[end - 1]))):
        end -= 1
    return kept[:end]


def _squash(text: str) -> str:
    return "".join(text.split())


def repeated_share(lines: list[str], min_sentence: int = 20) -> float:
    """Share of characters in long sentences that occur more than once: the symptom of a broken scrape."""
    counts = Counter(_squash(sentence) for line in lines for sentence in _SENTENCE.findall(line)
                     if len(sentence) >= min_sentence)
    total = sum(len(_squash(line)) for line in lines) or 1
    repeated = [key for key, n in counts.items() if n > 1]
    return sum(len(key) * (counts[key] - 1) for key in repeated) / total if len(repeated) >= 3 else 0.0


def drop_repeats(lines: list[str], min_sentence: int = 20, min_line: int = 8, symptom: float = 0.1) -> list[str]:
    """Keep each paragraph (and each long sentence) once when the text is a scrape that repeats blocks.

    Only when ``repeated_share`` reaches ``symptom``: laws legitimately repeat clauses such as
    "（三）法律、行政法规规定的其他情形。", so a text that repeats little is left alone.  Then a line whose text
    (whitespace ignored) was seen before is dropped, unless it is a 章/节/编 or Markdown heading, and inside
    a line a sentence of ``min_sentence`` or more characters seen before is dropped.

    The order is left as it is.  Restoring it by the document's own numbering (第一章 < 第二章, 一、 < 二、,
    （一） < （二）) was considered and rejected for the one such scrape we have (seed 002, 湘政发〔2016〕21号):
    it is shuffled below the paragraph level, so the numbered headings carry the wrong bodies
    ("2、推进区域旅游一体化。加强电源与电网建设…" is the energy item's text), the same label occurs under two
    parents (2、推进区域旅游一体化 under （四） and （八）), （七） and （九） are missing altogether.  Sorting by the numbers would move text under
    headings it does not belong to while looking authoritative; the scrape's order at least shows its damage.
    """
    if repeated_share(lines, min_sentence) < symptom:
        return lines
    seen_lines: set[str] = set()
    seen_sentences: set[str] = set()
    out: list[str] = []
    for line in lines:
        key = _squash(line)
        structural = bool(re.match(rf"^(?:#{{1,6}}\s*)?第[{_CN_NUM}\d]+[编章节]", line)) or line.startswith("#")
        if not structural and len(key) >= min_line and key in seen_lines:
            continue
        seen_lines.add(key)
        pieces = []
        for sentence in _SENTENCE.findall(line):
            skey = _squash(sentence)
            if len(skey) >= min_sentence and sentence[-1] in "。！？":
                if skey in seen_sentences:
                    continue
                seen_sentences.add(skey)
            pieces.append(sentence)
        text = "".join(pieces).strip()
        if text:
            out.append(text)
    return out


def clean_text(text: str) -> str:
    """Raw decoded text -> cleaned text (one paragraph per line, blank line between paragraphs)."""
    lines = [_PAGE_INLINE.sub("", line) for line in _SPACES.sub(" ", text).split("\n")]
    lines = [line for line in normalize_whitespace("\n".join(lines)).split("\n") if not is_page_marker(line)]
    lines = join_hard_wraps(lines)
    lines = _strip_edges(lines)
    lines = [part.strip() for line in lines for part in split_runons(line)]
    lines = drop_repeats([line for line in lines if line])
    return "\n\n".join(lines)
