"""Cleaned text -> provisions with heading paths, offsets and stable ids (pure: no I/O).

Heading levels, outermost first: 附件 > 第X编 > 第X章 > 第X节 > 第X条 / 一、 > （一）/(一) > 1./1．/1、 > （1）.
A line is a heading when it starts with one of these markers (Markdown ``#`` prefixes are stripped).

What becomes a provision, and what is deliberately left out (the "no text lost" rule the tests check):
- an *item* (一、/（一）/1． followed by body text on the same line, e.g. "18．强化医疗卫生合作。加强…") or an
  *article* (第X条 …) is one provision: its path ends with the item's heading sentence (without the final 。)
  or the article number, its text is the whole item, including the plain paragraphs that follow it (款) and,
  inside an article, its enumerated 项;
- sentence paragraphs before the first heading (a notice's body, a plan's preamble) are provisions with an
  empty path;
- under a heading that stands alone on its line, every paragraph is its own provision; a paragraph that opens
  with a short heading sentence ("区位交通优势凸显。…") gets that sentence as the last element of its path;
- left out of every provision: heading-only lines (they live on in the path), Markdown titles and the
  LawRefBook history block up to ``<!-- INFO END -->``, and the front matter before the first heading:
  lines of at most 80 characters without sentence punctuation or (beyond 40 characters) commas,
  and not numbered (issuer, title, 文号, addressee);
  the signature lines anywhere (an issuer line directly above a date line, the date, "（此件主动公开）");
- an item heading with nothing under it (the next paragraph is a sibling or higher heading, or the end) is
  an enumerated clause ("（一）罚金；"), hence body text, not a heading;
- a text without any body paragraph (headings or front matter only) becomes one provision with an empty path,
  and so does a whole BEIR record (one statute article, ≤ 3000 characters, no 章/节/条 inside): it is the
  benchmark's unit, so nothing of it may be dropped.
Before parsing, ``index.clean`` has removed page markers, site chrome and tables of contents, joined hard
wraps and (in scrapes only) dropped repeated paragraphs; those never reach a provision by design.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from index.clean import clean_text
from index.meta import extract_meta, extract_units
from index.types import Document, Provision, RawDocument

_CN = "一二三四五六七八九十百千零〇两"
_STRUCT = re.compile(rf"^第([{_CN}\d]+)(编|分编|章|节)(?:\s|$|[：:　])")
_ARTICLE = re.compile(rf"^第[{_CN}\d]+条(?:之[{_CN}]+)?(?![规的中款项和或及至、第之])")
_CN_ITEM = re.compile(rf"^[{_CN}]{{1,3}}、")
_PAREN_CN = re.compile(rf"^[（(][{_CN}]{{1,3}}[）)]")
_NUM_ITEM = re.compile(r"^\d{1,3}(?:[\.．、](?!\d)|\s*[\.．]\s)")
_PAREN_NUM = re.compile(r"^[（(]\d{1,3}[）)]")
_ANNEX = re.compile(r"^附件\s*\d{0,2}(?:\s*[：:].{0,40})?$|^附件\s*\d{0,2}\s+\S.{0,38}$")
_MD = re.compile(r"^(#{1,6})\s+(.*)$")
_SENT_END = re.compile(r"[。！？]")
_DATE_LINE = re.compile(r"^(?:[\u4e00-\u9fff]{2,20}?(?:人民政府|办公厅|办公室|委员会))?\s?(?:19|20)\d{2}年\d{1,2}月\d{1,2}日"
                        r"\s?(?:[（(]此件[^）)]{0,10}[）)])?$")
_SIGNER = re.compile(r"^[\u4e00-\u9fff]{2,30}(?:人民政府|办公厅|办公室|委员会|[厅局委办部])$")  # issuer over a date
_PUBLIC_NOTE = re.compile(r"^[（(]此件[^）)]{0,10}[）)]$")
_RANK = {"附件": 0.0, "编": 1.0, "分编": 1.5, "章": 2.0, "节": 3.0, "条": 4.0, "cn": 4.0, "paren_cn": 5.0,
         "num": 6.0, "paren_num": 7.0}
_BEIR_UNIT_MAX = 3000  # characters: BEIR records up to this size stay one provision
_MAX_HEADING = 40  # a heading sentence longer than this is body text, and the item is labelled by its number
_CLOSING_MIN_ITEMS = 3  # items of one rank, (almost) none with follow-on paragraphs, before the last item's are
_CLOSING_MAX_SHARE = 0.2  # closing text: at most this share of the siblings has follow-on paragraphs
_CLOSING_START = re.compile(
    r"^(?:本(?:[\u4e00-\u9fff]{0,8}?)(?:方案|办法|规定|意见|通知|政策|措施|决定|决议|细则|计划|纲要|规划|条例|指南|标准|函)"
    r"|各(?:地|级|有关|部门|单位|省|市|县|区|州)|全(?:省|市|县|区|国)|[省市县区州][\u4e00-\u9fff]{0,24}?(?:领导小组|人民政府)"
    r"|抄送|联系人|联系电话|联系方式|专此|特此|会议(?:号召|要求|强调)|以上)")


@dataclass(frozen=True)
class Heading:
    """A heading recognised at the start of a paragraph."""

    rank: float
    label: str  # verbatim, as it appears in the path
    kind: str  # "struct" | "article" | "item" | "annex" | "md"
    has_body: bool  # the paragraph carries body text after the heading


def _item_heading(line: str, marker_end: int, rank: float) -> Heading | None:
    """一、/（一）/1． lines: heading sentence up to the first 。, body after it (if any)."""
    m = _SENT_END.search(line)
    if m is None:
        if len(line) <= _MAX_HEADING:
            return Heading(rank, line.rstrip("：:；;"), "item", False)
        cut = re.search(r"[：:；;]", line)
        label = line[:cut.start()] if cut and cut.start() <= _MAX_HEADING else line[:marker_end].strip()
        return Heading(rank, label, "item", True)
    sentence, rest = line[:m.start()], line[m.end():].strip()
    if len(sentence) > _MAX_HEADING:
        return Heading(rank, line[:marker_end].strip(), "item", True)
    return Heading(rank, sentence, "item", bool(rest))


def detect_heading(line: str, in_article: bool = False) -> Heading | None:
    """The heading a paragraph starts with, or None for a body paragraph (enumerations inside an article are body)."""
    md = _MD.match(line)
    if md:
        text = re.sub(r"<!--.*?-->", "", md.group(2)).strip()
        inner = detect_heading(text) if text else None
        if inner is not None and inner.kind in ("struct", "annex"):
            return inner
        return Heading(float(len(md.group(1))), text, "md", False)
    m = _STRUCT.match(line)
    if m and len(line) <= 50 and not _SENT_END.search(line[:-1]):
        return Heading(_RANK[m.group(2)], line.rstrip("。"), "struct", False)
    m = _ARTICLE.match(line)
    if m:
        return Heading(_RANK["条"], m.group(0), "article", bool(line[m.end():].strip()))
    if _ANNEX.match(line):
        return Heading(_RANK["附件"], line, "annex", False)
    if in_article:
        return None
    for pattern, kind in ((_CN_ITEM, "cn"), (_PAREN_CN, "paren_cn"), (_NUM_ITEM, "num"), (_PAREN_NUM, "paren_num")):
        m = pattern.match(line)
        if m and len(line) > m.end():
            return _item_heading(line, m.end(), _RANK[kind])
    return None


def lead_sentence(paragraph: str) -> str | None:
    """The short heading sentence a 规划纲要 paragraph opens with ("区位交通优势凸显。…", "一轴:…"), else None."""
    m = re.match(r"^([^，,。；;：:]{2,10})[：:]\S", paragraph)
    if m:
        return m.group(1)
    m = _SENT_END.search(paragraph)
    if m and m.end() < len(paragraph) and 2 <= m.start() <= 25:
        sentence = paragraph[:m.start()]
        if not re.search(r"[，,；;：:]", sentence) or m.start() <= 12:
            return sentence
    return None


def _is_front_matter(line: str) -> bool:
    """Issuer, title, 文号 or addressee line: short, no sentence punctuation, not a clause-rich preamble."""
    if len(line) > 80 or re.search(r"[。！？；]", line) or (len(line) > 40 and re.search(r"[，,]", line)) \
            or line.startswith("|"):  # a Markdown table row is content
        return False
    return not (_CN_ITEM.match(line) or _PAREN_CN.match(line) or _NUM_ITEM.match(line))


def _signature_follows(text: str, paras: list[tuple[int, int]], n: int) -> bool:
    """Whether paragraphs ``n``… are further issuer lines (joint issuers, at most 4) and then a date line."""
    for start, end in paras[n:n + 5]:
        line = text[start:end]
        if _DATE_LINE.match(line):
            return True
        if not _SIGNER.match(line):
            return False
    return False


def _is_signature(line: str) -> bool:
    return bool(_DATE_LINE.match(line) or _PUBLIC_NOTE.match(line))


def provision_id(doc_id: str, path: tuple[str, ...], text: str) -> str:
    """Stable id: doc id + hash of heading path and text (same input, same id)."""
    digest = hashlib.sha1("\x1f".join((doc_id, *path, text)).encode("utf-8")).hexdigest()[:10]
    return f"{doc_id}#{digest}"


def _paragraphs(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"[^\n]+", text)]


def _detach_closing(text: str, spans: list[tuple[tuple[str, ...], int, int]], items: dict[int, tuple[float, int]],
                    absorbed: dict[int, list[tuple[int, int]]]) -> list[tuple[tuple[str, ...], int, int]]:
    """The document's closing paragraphs, which the last item took in as its 款, as provisions of their own.

    A 通知 or 方案 often ends with paragraphs about the whole document after its last numbered item, without
    a heading ("省……领导小组负责统筹推进……", "本方案自发布之日起施行。"; the 湘政办发〔2020〕8号 plan has no
    "三、保障措施" heading before them).  The last item is cut before the first of its follow-on paragraphs that
    opens like such a closing (``_CLOSING_START``: 本方案/本办法…, 各地/各级…, 省……领导小组, 抄送, 联系人…), when it is
    the document's last provision, has at least ``_CLOSING_MIN_ITEMS - 1`` siblings of its rank and at most
    ``_CLOSING_MAX_SHARE`` of them have follow-on paragraphs (in 001, PDF line breaks split items 8, 17 and 23
    of 30: 3 of 29; where items often have a second 款, the last one's may be a 款 too).  The detached
    paragraphs get an empty path (document level, like a preamble); nothing is dropped.
    """
    last = len(spans) - 1
    if last not in items or last not in absorbed:
        return spans
    rank, own_end = items[last]
    siblings = [i for i, (r, _) in items.items() if r == rank and i != last]
    with_more = sum(1 for i in siblings if i in absorbed)
    if len(siblings) + 1 < _CLOSING_MIN_ITEMS or with_more > _CLOSING_MAX_SHARE * len(siblings):
        return spans
    paras = absorbed[last]
    cut = next((n for n, (s, e) in enumerate(paras) if _CLOSING_START.match(text[s:e])), None)
    if cut is None:
        return spans
    path, start, _ = spans[last]
    keep_end = paras[cut - 1][1] if cut else own_end
    return [*spans[:last], (path, start, keep_end), *[((), s, e) for s, e in paras[cut:]]]


def parse_text(doc_id: str, text: str) -> tuple[Provision, ...]:
    """Provisions of an already cleaned text (offsets into ``text``)."""
    paras = _paragraphs(text)
    info_end = text.find("<!-- INFO END -->")
    if info_end >= 0:
        paras = [(s, e) for s, e in paras if s > info_end]
    entries: list[tuple[int, int, str, Heading | None]] = []
    in_article = False
    for n, (start, end) in enumerate(paras):
        line = text[start:end]
        if re.fullmatch(r"<!--.*-->", line) or _is_signature(line):
            continue
        if _SIGNER.match(line) and _signature_follows(text, paras, n + 1):
            continue  # the issuer line(s) of a signature (the date follows)
        heading = detect_heading(line, in_article)
        if heading is not None and heading.kind == "md" and heading.rank == 1.0:
            continue  # a Markdown title (LawRefBook "# 中华人民共和国…法"): document metadata
        if heading is not None:
            in_article = heading.kind == "article"
        entries.append((start, end, line, heading))
    # An item heading with nothing under it ("（一）罚金；" followed by "（二）…") is an enumerated clause: content.
    for i, (start, end, line, heading) in enumerate(entries):
        if heading is not None and heading.kind == "item" and not heading.has_body:
            nxt = entries[i + 1][3] if i + 1 < len(entries) else None
            if i + 1 == len(entries) or (nxt is not None and nxt.rank <= heading.rank):
                entries[i] = (start, end, line, None)
    stack: list[tuple[float, str]] = []
    spans: list[tuple[tuple[str, ...], int, int]] = []
    owner: tuple[str, ...] | None = None  # path of the open item/article that absorbs following paragraphs
    items: dict[int, tuple[float, int]] = {}  # span index of an item with body -> (rank, end of its own paragraph)
    absorbed: dict[int, list[tuple[int, int]]] = {}  # span index -> the follow-on paragraphs it took in
    front = True  # until the first heading
    for start, end, line, heading in entries:
        if heading is not None:
            front = False
            while stack and stack[-1][0] >= heading.rank:
                stack.pop()
            stack.append((heading.rank, heading.label))
            owner = None
            if heading.has_body or heading.kind == "article":
                owner = tuple(label for _, label in stack)
                if heading.has_body:
                    if heading.kind == "item":
                        items[len(spans)] = (heading.rank, end)
                    spans.append((owner, start, end))
                else:
                    spans.append((owner, -1, -1))  # an article whose text starts on the next line
            continue
        if front and _is_front_matter(line):
            continue  # before the first heading: issuer, 文号, addressee, title lines
        path = tuple(label for _, label in stack)
        if owner is not None and spans and spans[-1][0] == owner:
            o_path, o_start, _ = spans[-1]
            spans[-1] = (o_path, start if o_start < 0 else o_start, end)
            absorbed.setdefault(len(spans) - 1, []).append((start, end))
            continue
        lead = lead_sentence(line)
        spans.append(((*path, lead) if lead else path, start, end))
    spans = _detach_closing(text, spans, items, absorbed)
    provisions: list[Provision] = []
    seen: dict[str, int] = {}
    for path, start, end in spans:
        if start < 0:
            continue
        body = text[start:end]
        pid = provision_id(doc_id, path, body)
        seen[pid] = seen.get(pid, 0) + 1
        if seen[pid] > 1:
            pid = f"{pid}-{seen[pid]}"
        lead_units, resp_units = extract_units(body)
        provisions.append(Provision(pid, doc_id, path, body, start, end, lead_units, resp_units))
    if not provisions and text.strip():
        start = len(text) - len(text.lstrip())
        body = text.strip()
        provisions.append(Provision(provision_id(doc_id, (), body), doc_id, (), body, start, start + len(body)))
    return tuple(provisions)


def parse_document(raw: RawDocument) -> Document:
    """Clean a raw document, read its metadata and split it into provisions."""
    text = clean_text(raw.text)
    meta = extract_meta(raw, text)
    provisions = parse_text(raw.doc_id, text)
    if raw.meta_hint.get("layout") == "beir" and text.strip() and len(text) <= _BEIR_UNIT_MAX:
        # A BEIR record is the benchmark's unit (one article): keep it whole unless it is a long structured text.
        heads = [detect_heading(p.path[0]) for p in provisions if p.path]
        if not any(h is not None and h.kind in ("struct", "article") for h in heads):
            body = text.strip()
            start = text.index(body)
            provisions = (Provision(provision_id(raw.doc_id, (), body), raw.doc_id, (), body, start,
                                    start + len(body), *extract_units(body)),)
    return Document(
        id=raw.doc_id, title=meta.title, text=text, provisions=provisions,
        sources=(raw.source,), doc_number=meta.doc_number, issuer=meta.issuer, date=meta.date,
        region=meta.region, url=meta.url,
    )
