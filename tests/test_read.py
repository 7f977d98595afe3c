"""Readers: every supported format, encodings, and a plain-words ReadError for every kind of bad input."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from index.read import ReadError, read_path

PLAN = "一、总体要求\n\n以习近平新时代中国特色社会主义思想为指导，加快推进高质量发展。\n"


def _pdf(text: str = "Article 1. Hello policy world.", password: str | None = None) -> bytes:
    """A one-page PDF with a real text layer (Helvetica), optionally encrypted."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(300, 300)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 20 250 Td ({text}) Tj ET".encode("latin-1"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    if password:
        writer.encrypt(password)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16"])
def test_text_encodings(tmp_path, encoding):
    path = _write(tmp_path, "a.txt", PLAN.encode(encoding) * 3)
    [raw] = read_path(path, tmp_path)
    assert raw.text.lstrip("\ufeff").startswith("一、总体要求")
    assert raw.doc_id == "a" and raw.source.format == "txt" and raw.source.path == "a.txt"


def test_doc_id_is_relative_path_without_extension(tmp_path):
    (tmp_path / "sub").mkdir()
    path = _write(tmp_path / "sub", "000_x.md", PLAN)
    [raw] = read_path(path, tmp_path)
    assert raw.doc_id == "sub/000_x" and raw.source.format == "md" and len(raw.source.sha256) == 64


def test_html_main_text_title_and_source_link(tmp_path):
    html = ("<html><head><title>关于某事的通知_某市政府网</title><script>var x='脚本';</script></head><body>"
            "<nav>导航栏</nav><p>第一段<b>加粗</b>继续。</p><p>原文链接：<a href='http://a.gov.cn/1.html'>点此</a></p>"
            "<footer>版权所有</footer></body></html>")
    [raw] = read_path(_write(tmp_path, "p.html", html), tmp_path)
    assert "第一段加粗继续。" in raw.text.split("\n")
    assert "脚本" not in raw.text and "导航栏" not in raw.text and "版权所有" not in raw.text
    assert raw.title_hint == "关于某事的通知" and raw.source.url == "http://a.gov.cn/1.html"


def test_html_in_gbk(tmp_path):
    html = "<html><head><meta charset='gbk'></head><body><p>各县（区）人民政府：现将方案印发给你们。</p></body></html>"
    [raw] = read_path(_write(tmp_path, "g.htm", html.encode("gbk") * 2), tmp_path)
    assert "各县（区）人民政府" in raw.text


def test_pdf_text_layer(tmp_path):
    [raw] = read_path(_write(tmp_path, "a.pdf", _pdf()), tmp_path)
    assert "Hello policy world" in raw.text and raw.source.format == "pdf"


def test_docx_paragraphs_and_tables(tmp_path):
    import docx

    d = docx.Document()
    d.add_paragraph("一、总体要求")
    d.add_paragraph("加快推进高质量发展。")
    table = d.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "牵头单位"
    table.rows[0].cells[1].text = "市发改委"
    path = tmp_path / "a.docx"
    d.save(path)
    [raw] = read_path(path, tmp_path)
    assert raw.text.split("\n")[:2] == ["一、总体要求", "加快推进高质量发展。"]
    assert "| 牵头单位 | 市发改委 |" in raw.text


def test_jsonl_beir_records_and_line_problems(tmp_path):
    lines = [json.dumps({"_id": "a1", "title": "刑法第一条", "text": "为了惩罚犯罪，保护人民，制定本法。"}, ensure_ascii=False),
             "{not json",
             json.dumps({"title": "no id", "text": "x"}),
             json.dumps({"_id": "a1", "title": "dup", "text": "重复"}, ensure_ascii=False),
             json.dumps({"_id": "b2", "title": "刑法第二条", "text": "中华人民共和国刑法的任务。"}, ensure_ascii=False)]
    problems: list[ReadError] = []
    docs = read_path(_write(tmp_path, "c.jsonl", "\n".join(lines)), tmp_path, problems=problems)
    assert [d.doc_id for d in docs] == ["a1", "b2"] and docs[0].title_hint == "刑法第一条"
    reasons = " | ".join(f"{p.path} {p.reason}" for p in problems)
    assert len(problems) == 3 and "c.jsonl:2" in reasons
    assert "missing '_id'" in reasons and "duplicate id 'a1'" in reasons


def test_jsonl_policies_layout(tmp_path):
    rec = {"sheet": "Central", "release_time": "2019-07-26 00:00:00", "source": "http://x.gov.cn/1.html",
           "dept": "Ministry X", "title_en": "Guidelines", "content": "一、总体要求\n（一）指导思想。加快发展。"}
    [raw] = read_path(_write(tmp_path, "policies.jsonl", json.dumps(rec, ensure_ascii=False)), tmp_path)
    assert raw.doc_id.startswith("policies/") and raw.meta_hint["issuer"] == "Ministry X"
    assert raw.meta_hint["date"].startswith("2019-07-26") and raw.source.url == "http://x.gov.cn/1.html"
    assert read_path(tmp_path / "policies.jsonl", tmp_path)[0].doc_id == raw.doc_id  # stable id


# --- bad input: each case raises ReadError naming the problem ------------------------------------------------

@pytest.mark.parametrize("name,data,reason", [
    ("bin.txt", bytes(range(256)) * 4, "binary"),
    ("empty.txt", b"", "empty"),
    ("blank.md", b"  \n\t\n  ", "empty"),
    ("a.xyz", "一些文字".encode(), "unsupported file type"),
    ("noext", "一些文字".encode(), "unsupported file type"),
    ("bad.txt", bytes(range(0x80, 0x100)) * 20, "undecodable"),
    ("trunc.pdf", None, "truncated"),
    ("secret.pdf", None, "encrypted"),
    ("fake.pdf", b"this is not a pdf at all %%EOF", "not a PDF"),
    ("bad.docx", b"PK\x03\x04 not really a zip", "not a readable .docx"),
    ("bad.jsonl", b"{oops\n[1,2]\n", "no usable JSONL records"),
])
def test_bad_input(tmp_path, name, data, reason):
    if name == "trunc.pdf":
        data = _pdf()[:-200]
    elif name == "secret.pdf":
        data = _pdf(password="s3cret")
    path = _write(tmp_path, name, data)
    with pytest.raises(ReadError) as info:
        read_path(path, tmp_path)
    assert reason in info.value.reason and str(path) in str(info.value)


def test_size_limit(tmp_path):
    path = _write(tmp_path, "big.txt", PLAN * 50)
    with pytest.raises(ReadError, match="too large"):
        read_path(path, tmp_path, max_bytes=1000)
    assert read_path(path, tmp_path)  # the default limit (50 MB) accepts it


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_permission_denied(tmp_path):
    path = _write(tmp_path, "locked.txt", PLAN)
    path.chmod(0)
    with pytest.raises(ReadError, match="permission denied"):
        read_path(path, tmp_path)


def test_symlink_loop_and_missing(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(ReadError, match="symlink loop"):
        read_path(a, tmp_path)
    with pytest.raises(ReadError, match="not found"):
        read_path(tmp_path / "missing.txt", tmp_path)


def test_directory_is_refused(tmp_path):
    with pytest.raises(ReadError, match="directory"):
        read_path(tmp_path, tmp_path)


def test_permission_denied_reported_in_plain_words(tmp_path, monkeypatch):
    path = _write(tmp_path, "locked.txt", PLAN)

    def deny(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", deny)  # as root chmod 0 does not stop reads
    with pytest.raises(ReadError, match="permission denied"):
        read_path(path, tmp_path)


def test_html_content_container_preferred_over_menus(tmp_path):
    menu = "".join(f"<li><a href='/{i}'>栏目{i}</a></li>" for i in range(30))
    body = "".join(f"<p>第{i}条 本条规定相应事项，有关部门按照职责分工负责实施。</p>" for i in "一二三四五六七八")
    html = (f"<html><head><title>某办法</title></head><body><div class='menu'><ul>{menu}</ul></div>"
            f"<div class='info'>发布日期：2021-05-06</div><div id='zoom'>{body}</div>"
            f"<div class='links'><ul>{menu}</ul></div></body></html>")
    [raw] = read_path(_write(tmp_path, "m.html", html), tmp_path)
    assert "栏目" not in raw.text and "发布日期：2021-05-06" in raw.text and "第八条 本条规定" in raw.text


def test_html_declared_charset_is_used(tmp_path):
    html = ("<html><head><meta http-equiv='Content-Type' content='text/html; charset=gb2312'></head>"
            "<body><p>萍乡市人民政府办公室关于印发方案的通知</p></body></html>")
    [raw] = read_path(_write(tmp_path, "d.html", html.encode("gb18030")), tmp_path)
    assert "萍乡市人民政府办公室" in raw.text and raw.source.encoding == "gb18030"


# --- GBK without a declaration, GB18030-only characters ----------------------------------------------------------

@pytest.mark.parametrize("text,encoding", [
    ("医保异地结算", "gbk"),  # six characters: also valid Korean cp949 with zero chaos; Chinese wins the tie
    ("各县区人民政府：现将方案印发给你们。", "gbk"),
    ("（一）加强基础设施互联互通。“十三五”期间，建成3—5个合作示范区。", "gbk"),
    ("第一条 申请人王䶮、张𠮷提交的材料齐全的，应当受理。", "gb18030"),  # 䶮 and 𠮷 are not in GBK
])
def test_undeclared_gbk_and_gb18030(tmp_path, text, encoding):
    data = text.encode(encoding)
    if encoding == "gb18030":
        with pytest.raises(UnicodeEncodeError):
            text.encode("gbk")
    [raw] = read_path(_write(tmp_path, "g.txt", data), tmp_path)
    assert raw.text == text and raw.source.encoding == "gb18030"


def test_short_big5_and_euc_kr_are_not_taken_for_gbk(tmp_path):
    [raw] = read_path(_write(tmp_path, "b.txt", "醫療保障異地就醫即時結算".encode("big5")), tmp_path)
    assert raw.text == "醫療保障異地就醫即時結算"
    [raw] = read_path(_write(tmp_path, "k.txt", "의료보험 지역 결산".encode("euc-kr")), tmp_path)
    assert raw.text == "의료보험 지역 결산"


# --- real Chinese PDF and .docx fixtures (tests/fixtures/make_docs.py) ---------------------------------------------

DOCS = Path(__file__).parent / "fixtures" / "docs"


def _parsed(name: str):
    from index.parse import parse_document

    return parse_document(read_path(DOCS / name, DOCS)[0])


def test_chinese_pdf_pages_wraps_and_headings():
    raw = read_path(DOCS / "notice.pdf", DOCS)[0]
    assert "— 1 —" in raw.text and "即时结算并\n— 1 —" in raw.text  # the marker sits inside a sentence
    doc = _parsed("notice.pdf")
    assert (doc.title, doc.doc_number, doc.issuer, doc.date) == (
        "示例省医疗保障协同发展实施方案", "示政办发〔2024〕9号", "示例省人民政府办公厅", "2024-05-06")
    assert "—" not in doc.text  # page markers gone
    paths = {" › ".join(p.path): p.text for p in doc.provisions}
    item1 = paths["二、重点任务 › （一）推进异地就医结算 › 1．扩大直接结算范围"]
    # wrapped lines joined across the page break, the marker dropped from the middle of the sentence
    assert "实现异地就医即时结算并报销医保费用，推动医保结算系统平台互联互通" in item1 and "\n" not in item1
    item4 = paths["二、重点任务 › （二）加强基金监管 › 4．推进信息互通"]
    # a full line ending in 。 (here hanging as the 29th character) is taken as a paragraph end (clean.join_hard_wraps)
    assert item4.endswith("推动跨省数据共享。\n\n实现参保登记、待遇核定、费用结算等数据实时交换，提升经办服务效率。")
    assert paths["一、总体要求"].startswith("以人民健康为中心") and paths["三、保障措施"].startswith("各地各部门")
    # paragraph breaks kept: one paragraph per line of the cleaned text, headings on their own lines
    lines = doc.text.split("\n\n")
    assert "二、重点任务" in lines and "（一）推进异地就医结算。" in lines and item1 in lines
    assert len(doc.provisions) == 7 and not any("示例省人民政府办公厅" == p.text for p in doc.provisions)


def test_chinese_pdf_truncated_is_named_with_reason():
    with pytest.raises(ReadError) as info:
        read_path(DOCS / "notice_truncated.pdf", DOCS)
    assert "notice_truncated.pdf" in str(info.value) and "truncated PDF" in info.value.reason


def test_chinese_pdf_with_user_password_is_refused():
    with pytest.raises(ReadError) as info:
        read_path(DOCS / "notice_encrypted.pdf", DOCS)
    assert "notice_encrypted.pdf" in str(info.value) and "encrypted PDF, password required" in info.value.reason


def test_chinese_pdf_with_owner_password_only_is_read():
    # decided: an empty user password means any viewer opens it without asking, so ingest reads it too
    plain, owner_only = (read_path(DOCS / name, DOCS)[0] for name in ("notice.pdf", "notice_owner_only.pdf"))
    assert owner_only.text == plain.text and owner_only.source.format == "pdf"


def test_docx_fixture_headings_table_in_document_order():
    raw = read_path(DOCS / "notice.docx", DOCS)[0]
    lines = raw.text.split("\n")
    table = lines.index("| 任务 | 牵头单位 | 完成时限 |")
    assert lines[table - 1] == "三、任务分工" and lines[table + 4].startswith("各地要按照分工抓好落实")
    assert lines[table + 3] == "| 督促检查 | 市政府督查室（每半年一次） |"  # a merged cell once
    doc = _parsed("notice.docx")
    assert doc.title == "示例市养老服务体系建设方案"
    paths = [(p.path, p.text) for p in doc.provisions]
    assert (("二、重点任务", "2．推进医养结合"), "2．推进医养结合。支持医疗机构开展养老服务，实现异地就医结算便利化。") in paths
    assert (("三、任务分工",), "| 推进医养结合 | 市卫健委、市医保局 | 2024年底 |") in paths
