"""Document metadata from the text itself: title, 文号, issuing body, date, region, source URL, task owners."""
from __future__ import annotations

import re
from dataclasses import dataclass

from index.types import RawDocument

_WS = re.compile(r"\s+")
_TITLE_NOTICE = re.compile(r"关于印发《(.+?)》的?(?:通知|决定|通报|函)")
_TITLE_NOTICE_BARE = re.compile(r"关于印发([^《》，。]{4,60}?)的(?:通知|决定|通报)")
_CN_NUM = "一二三四五六七八九十百零〇"
_DOC_TYPES = r"(?:通知|意见|方案|规划|纲要|办法|规定|条例|计划|决定|细则|指南|规则|法|公告|通告|批复|报告|要点|措施|标准)"
_TITLE_LINE = re.compile(rf"^[^。；，,;]{{4,60}}{_DOC_TYPES}(?:[（(][^）)]{{2,20}}[）)])?$")
# 文号: issuer abbreviation + year in 〔〕 (or look-alikes) + serial number + 号.
_DOC_NUMBER = re.compile(r"[〔［\[【﹝(（]\s*((?:19|20)\d{2})\s*[〕］\]】﹞)）]\s*(\d{1,4})\s*号")
_ABBR_STOP = set("知的》：:。，、；;（(）) ")
_ORG_SUFFIX = r"(?:人民政府办公厅|人民政府办公室|人民政府|办公厅|办公室|委员会|省委|市委|区委|县委|国务院|厅|局|部|署|委|院|会|府)"
_DATE_CN = re.compile(r"((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_DATE_ISO = re.compile(r"((?:19|20)\d{2})[-/.](\d{1,2})[-/.](\d{1,2})")
_DATE_LABEL = re.compile(r"(?:发布|成文|印发)(?:时间|日期)\s*[:：]\s*")
_URL_LABEL = re.compile(r"原文(?:链接|地址)\s*[:：]\s*(https?://[^\s<>\"'，。]+)")
_PROVINCES = (
    "北京市 天津市 上海市 重庆市 河北省 山西省 辽宁省 吉林省 黑龙江省 江苏省 浙江省 安徽省 福建省 江西省 山东省 河南省 "
    "湖北省 湖南省 广东省 海南省 四川省 贵州省 云南省 陕西省 甘肃省 青海省 台湾省 内蒙古自治区 广西壮族自治区 "
    "西藏自治区 宁夏回族自治区 新疆维吾尔自治区 香港特别行政区 澳门特别行政区"
).split()
_PROVINCE_RE = re.compile("|".join(_PROVINCES))
_PROVINCE_SHORT = {p[:2] if not p.startswith(("内蒙古", "黑龙江")) else p[:3]: p for p in _PROVINCES}
_CITY = re.compile(r"([\u4e00-\u9fff]{2,4}?[市州盟])(?:人民政府|委|政府|人大|发展|财政|[\u4e00-\u9fff]{0,6}(?:局|厅|办公室))")
_NATIONAL = re.compile(
    r"^(?:国务院|中共中央|全国人民代表大会|中华人民共和国|国家|最高人民(?:法院|检察院)|中央|财政部|教育部|科技部"
    r"|工业和信息化部|公安部|民政部|司法部|商务部|交通运输部|农业农村部|水利部|文化和旅游部|自然资源部|生态环境部"
    r"|住房和城乡建设部|人力资源和社会保障部)"
)
# policies.jsonl names its issuers in English: the Shandong province and city names it uses.
_ENGLISH_REGIONS = {"Jinan": "济南市", "Qingdao": "青岛市", "Zibo": "淄博市", "Zaozhuang": "枣庄市", "Dongying": "东营市",
                    "Yantai": "烟台市", "Weifang": "潍坊市", "Jining": "济宁市", "Tai'an": "泰安市", "Weihai": "威海市",
                    "Rizhao": "日照市", "Linyi": "临沂市", "Dezhou": "德州市", "Liaocheng": "聊城市", "Binzhou": "滨州市",
                    "Heze": "菏泽市", "Shandong": "山东省"}
_REGION_PREFIX = re.compile(r"^([\u4e00-\u9fff]{2,4}?[省市州])")
_UNITS = re.compile(r"[（(]\s*(?:牵头单位\s*[:：]\s*(?P<lead>[^；;）)]+?)\s*[；;]?\s*)?"
                    r"(?:责任单位\s*[:：]\s*(?P<resp>[^）)]+?))?\s*[）)]")
_UNITS_NOTE = re.compile(r"[（(](?P<lead>[^（()）：:]{2,60}?)牵头(?:负责)?"
                         r"(?:[，,](?P<resp>[^（()）]{2,120}?)(?:等)?(?:参与|按职责分工负责|配合))?[）)]")


@dataclass(frozen=True)
class Meta:
    """What the text says about itself."""

    title: str
    doc_number: str | None = None
    issuer: str | None = None
    date: str | None = None
    region: str | None = None
    url: str | None = None


def _iso(y: str, m: str, d: str) -> str | None:
    mi, di = int(m), int(d)
    return f"{int(y):04d}-{mi:02d}-{di:02d}" if 1 <= mi <= 12 and 1 <= di <= 31 else None


def extract_title(raw_text: str, cleaned: str, hint: str | None = None) -> str:
    """The document's title: 《…》 in "关于印发《…》的通知", a Markdown H1, the container's title, a title-like line."""
    head = _WS.sub("", raw_text[:3000])
    for pattern in (_TITLE_NOTICE, _TITLE_NOTICE_BARE):
        m = pattern.search(head)
        if m:
            return m.group(1)
    h1 = re.search(r"^#\s+(.+?)\s*$", raw_text[:2000], re.MULTILINE)
    if h1:
        return _WS.sub("", re.sub(r"<!--.*?-->", "", h1.group(1)))
    lines = [line for line in cleaned.split("\n")[:20] if line.strip()]
    chinese_hint = bool(hint and re.search(r"[\u4e00-\u9fff]", hint))
    if hint and hint.strip() and chinese_hint:
        return hint.strip()
    for line in lines[:8]:  # before an English container title (policies.jsonl has only title_en)
        if _TITLE_LINE.match(line.strip()) and not line.startswith("附件"):
            return line.strip()
    if hint and hint.strip():
        return hint.strip()
    first = lines[0].strip() if lines else ""
    return first[:60]


def extract_doc_number(text: str) -> str | None:
    """The document's own 文号 (e.g. 湘政办发〔2020〕8号) near its head; cited numbers in parentheses are skipped."""
    head = text[:3000]
    for m in _DOC_NUMBER.finditer(head):
        i = m.start()
        abbr = []
        while i > 0 and len(abbr) < 8:
            ch = head[i - 1]
            if not ("\u4e00" <= ch <= "\u9fff") or ch in _ABBR_STOP:
                break
            abbr.append(ch)
            i -= 1
        if len(abbr) < 2 or (i > 0 and head[i - 1] in "（("):
            continue  # a citation such as "（国发﹝2016﹞18号）", not this document's number
        # normalised to the standard form: 六角括号, no spaces ("湘政办发〔2020〕8 号" -> "湘政办发〔2020〕8号")
        return f"{''.join(reversed(abbr))}〔{m.group(1)}〕{m.group(2)}号"
    return None


def extract_issuer(raw_text: str) -> str | None:
    """The issuing body named before "关于…" in the heading of the notice (on the same line or the line above)."""
    lines = [re.sub(r"[ \t\u3000]+", " ", line).strip().lstrip("# ") for line in raw_text[:1500].split("\n")]
    lines = [line for line in lines if line]
    for i, line in enumerate(lines[:15]):
        at = line.find("关于")
        if at < 0 or "《" in line[:at]:
            continue
        before = line[:at].strip() or (lines[i - 1] if i else "")
        m = re.fullmatch(rf"([\u4e00-\u9fff][\u4e00-\u9fff 、]{{0,40}}?{_ORG_SUFFIX})", before.strip())
        if m:
            return m.group(1)
    return None


def extract_date(raw_text: str, cleaned: str) -> str | None:
    """ISO date: a labelled 发布日期, else a line that is only a date (the signature or a page's date stamp)."""
    label = _DATE_LABEL.search(raw_text[:3000])
    if label:
        tail = raw_text[label.end():label.end() + 20]
        m = _DATE_CN.match(tail) or _DATE_ISO.match(tail)
        if m and _iso(*m.groups()):
            return _iso(*m.groups())
    for line in cleaned.split("\n")[:60]:
        m = _DATE_CN.match(line.strip())
        if m and len(line.strip()) <= m.end() + 12:
            return _iso(*m.groups())
    # A web page's date stamp on a line of its own ("2021-03-05 00:00:00"); a date inside a sentence
    # ("本法自1997年10月1日起施行") is not the document's date.
    m = re.search(r"^\s*((?:19|20)\d{2})[-/.](\d{1,2})[-/.](\d{1,2})(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?\s*$",
                  raw_text[:600], re.MULTILINE)
    return _iso(*m.groups()) if m else None


def extract_region(*texts: str | None) -> str | None:
    """Province or city named by the issuer or title (city first: it is the narrower filter); 全国 for central bodies."""
    for text in texts:
        if not text:
            continue
        m = _CITY.search(text)
        if m and not m.group(1).endswith(("省市", "各市")):
            return m.group(1)
    for text in texts:
        if not text:
            continue
        m = _PROVINCE_RE.search(text)
        if m:
            return m.group(0)
        for short, name in _PROVINCE_SHORT.items():
            if text.startswith(short) or text.startswith("中共" + short):
                return name
    for text in texts:
        if text and _NATIONAL.match(text):
            return "全国"
    return None


def _legislature(text: str) -> str | None:
    """LawRefBook history block: the body that adopted, promulgated or last amended the text."""
    info_end = text.find("<!-- INFO END -->")
    if info_end < 0:
        return None
    bodies = re.findall(rf"日\s*(\S+?)(?:第[{_CN_NUM}\d]+次(?:全体|常务)?会议|令第|公告|发布|公布|印发)", text[:info_end])
    bodies = [re.sub(rf"第[{_CN_NUM}]+届|(?:审判|检察)委员会$", "", b) for b in bodies]
    bodies = [b for b in bodies if len(b) >= 2 and not b.startswith(("根据", "经"))]
    return bodies[-1] if bodies else None


def extract_url(raw_text: str) -> str | None:
    """The source URL given as 原文链接 in the text."""
    m = _URL_LABEL.search(raw_text)
    return m.group(1) if m else None


def extract_units(text: str) -> tuple[str | None, str | None]:
    """(牵头单位, 责任单位) from the closing note of a task item, e.g. "（牵头单位：市卫健委；责任单位：…）"."""
    lead = resp = None
    for m in _UNITS.finditer(text):
        if m.group("lead") or m.group("resp"):
            lead, resp = m.group("lead"), m.group("resp")
    if lead is None and resp is None:
        for m in _UNITS_NOTE.finditer(text):
            lead, resp = m.group("lead"), m.group("resp")
    strip = lambda s: s.strip(" ，,；;") or None if s else None  # noqa: E731
    return strip(lead), strip(resp)


def extract_meta(raw: RawDocument, cleaned: str) -> Meta:
    """All document-level metadata; container hints (jsonl fields, html title, 原文链接 anchors) fill the gaps."""
    hint = raw.meta_hint or {}
    text = raw.text
    title = extract_title(text, cleaned, raw.title_hint)
    issuer = hint.get("issuer") or extract_issuer(text) or _legislature(text)
    date = None
    if hint.get("date"):
        m = _DATE_ISO.match(str(hint["date"])) or _DATE_CN.match(str(hint["date"]))
        date = _iso(*m.groups()) if m else None
    if date is None:
        info_end = text.find("<!-- INFO END -->")
        if info_end > 0:  # LawRefBook: the latest date of the history block
            dates = [_iso(*m.groups()) for m in _DATE_CN.finditer(text[:info_end])]
            date = next((d for d in reversed(dates) if d), None)
    date = date or hint.get("file_date") or extract_date(text, cleaned)
    url = hint.get("url") or raw.source.url or extract_url(text)
    prefix = _REGION_PREFIX.match(title)
    region = extract_region(issuer, title, prefix.group(1) + "人民政府" if prefix else None)
    if region is None and issuer and issuer.isascii():
        region = next((cn for en, cn in _ENGLISH_REGIONS.items() if en in issuer), None)
        if region is None and str(hint.get("collection", "")).startswith("Central"):
            region = "全国"
    return Meta(title=title, doc_number=extract_doc_number(text), issuer=issuer, date=date, region=region, url=url)
