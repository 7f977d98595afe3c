"""Bad input, one table: every kind of bad query, parameter, filter, file and corpus, across every surface.

Each row names a case. Query rows run on the Python API (``Searcher.query``), the CLI (``policyqa search --json``,
run in-process through ``app.cli.main`` exactly as the console script) and both HTTP APIs of ``policyqa serve`` on a
real server on loopback: Gradio's (``POST /gradio_api/call/search``, then its event stream) and the JSON route
(``POST /api/search``, app/api.py). File rows run ``ingest_paths`` and
``policyqa ingest`` on a copy of a built index; CLI rows cover arguments only the CLI takes, HTTP rows raw requests
(uploads, file routes, malformed bodies). Every row asserts a clear message naming the file or field, or a sane
result; that the CLI never prints a traceback; and that a refused ingest leaves the previous index byte-identical.
The README's "What happens when…" table summarises these rows.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

import zipfile

import httpx
import pytest

from fakes import HashEmbedder
from index.pipeline import ingest_paths
from index.search import REASON_EMPTY, REASON_FILTERED, Searcher
from index.store import build_index
from index_fixtures import corpus

QUESTION = "医保异地结算"
MB = 1024 * 1024


# ---------------------------------------------------------------- expectations
@dataclass(frozen=True)
class Ok:
    """A sane result: no error; optionally the same hits as ``same_as``, a reason, a warning, a hit cap."""

    same_as: str | None = None
    reason: str | None = None
    warning: str | None = None
    max_hits: dict = field(default_factory=dict)  # surface -> cap
    note: str | None = None  # a note on how the query was read (e.g. the Chinese words of an English query)


@dataclass(frozen=True)
class Err:
    """Refused with a message on each surface: Python (exception type, text), CLI stderr (exit 2), HTTP error event.

    ``Ok(...)`` in place of a message means that surface gives a sane result instead (e.g. the CLI has no doc list
    to check an id against, so an unknown id simply matches nothing).
    """

    py: tuple[type[BaseException], str] | Ok
    cli: str | Ok
    http: str | Ok
    rest: str | Ok | None = None  # the JSON route's 400 message, when it differs from Gradio's API (``http``)


@dataclass(frozen=True)
class Refused:
    """Ingest refused: every word in ``says`` (plus the file name) is in the message; the index is unchanged."""

    says: tuple[str, ...]


@dataclass(frozen=True)
class Indexed:
    """Ingest succeeded (exit 0, or 1 with ``skipped`` problems reported); ``finds`` is then searchable."""

    finds: str
    skipped: tuple[str, ...] = ()
    docs: int | None = None


@dataclass(frozen=True)
class CliRefused:
    """``policyqa ARGS`` exits 2 with every word of ``says`` in its one-line message (and no traceback)."""

    says: tuple[str, ...]


@dataclass(frozen=True)
class CliSkipped:
    """``policyqa ARGS`` exits 1: every word of ``says`` in its ``跳过 skipped:`` lines, ``answers`` results printed."""

    says: tuple[str, ...]
    answers: int


def c(*args, files=None, says=(), answers=None):
    expect = CliRefused(tuple(says)) if answers is None else CliSkipped(tuple(says), answers)
    return ("cli", dict(args=args, files=files or {}), expect)


def q(query, k=10, expect=Ok(), cli_args=(), **filters):
    return ("query", dict(query=query, k=k, filters=filters, cli_args=tuple(cli_args)), expect)


def f(name, make, expect):
    return ("file", dict(name=name, make=make), expect)


# ---------------------------------------------------------------- file builders
def _pdf(password: str | None = None) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    if password:
        writer.encrypt(password)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


GBK_TEXT = "关于推进医保异地结算的通知\n\n一、总体要求\n\n（一）推进医保异地就医直接结算，方便参保群众。\n"


def _write(data: bytes | str):
    def make(path: Path) -> None:
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return make


def _big(path: Path) -> None:
    with open(path, "wb") as fh:  # 50 MiB of text: over the 50 MB reader limit
        fh.write(("第一条 医保异地结算。\n" * 2000).encode() * (50 * MB // 60000 + 1))


def _loop(path: Path) -> None:
    other = path.with_name("loop_b.txt")
    other.symlink_to(path)
    path.symlink_to(other)


def _jsonl(*records: object) -> object:
    return _write("\n".join(r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records) + "\n")


def _docx(xml_padding: int = 0, paragraphs: int = 0) -> bytes:
    """A real .docx (python-docx) with ``xml_padding`` bytes of spaces and ``paragraphs`` tiny paragraphs more inside
    word/document.xml."""
    import docx

    document = docx.Document()
    document.add_paragraph(GBK_TEXT)
    buf = io.BytesIO()
    document.save(buf)
    if not xml_padding and not paragraphs:
        return buf.getvalue()
    src, out = zipfile.ZipFile(io.BytesIO(buf.getvalue())), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename != "word/document.xml":
                dst.writestr(info.filename, body)
                continue
            head, tail = body.split(b"<w:body>", 1)
            with dst.open(info.filename, "w") as fh:  # streamed: the padding never sits in memory
                fh.write(head + b"<w:body>")
                for start in range(0, xml_padding, MB):
                    fh.write(b" " * min(MB, xml_padding - start))
                fh.write(b"<w:p><w:r><w:t>x</w:t></w:r></w:p>" * paragraphs)
                fh.write(tail)
    return out.getvalue()


def _lying_docx(path: Path) -> None:
    """A docx bomb whose headers claim word/document.xml is 2 KB while it inflates to 30 MB."""
    data = bytearray(_docx(30 * MB))
    for sig, size_at in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):  # central directory and local header
        at = -1
        while (at := data.find(sig, at + 1)) >= 0:
            name_len = int.from_bytes(data[at + (28 if sig == b"PK\x01\x02" else 26):][:2], "little")
            name_at = at + (46 if sig == b"PK\x01\x02" else 30)
            if bytes(data[name_at:name_at + name_len]) == b"word/document.xml":
                data[at + size_at:at + size_at + 4] = (2048).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def _symlinks_out(folder: Path) -> None:
    """A folder with one document and three ways out of it: a plain symlink, a relative ../ one, a chain."""
    outside = folder.parent.parent / "outside.txt"
    outside.write_text("关于机密事项的通知\n\n第一条 这是文件夹以外的机密内容。\n", encoding="utf-8")
    (folder / "sub").mkdir(parents=True)
    (folder / "ok.txt").write_text(GBK_TEXT, encoding="utf-8")
    (folder / "passwd.txt").symlink_to("/etc/passwd")
    (folder / "sub" / "up.txt").symlink_to(Path("..") / ".." / ".." / "outside.txt")
    (folder / "chain.txt").symlink_to(folder / "sub" / "up.txt")


def _index_inside(folder: Path) -> None:
    """A corpus folder with an index built inside it (its bm25/stopwords.txt, userdict.txt) and a lock beside it."""
    from index_fixtures import corpus

    folder.mkdir()
    (folder / "ok.txt").write_text(GBK_TEXT, encoding="utf-8")
    build_index(corpus()[:2], folder / "ix", HashEmbedder(), progress=False)


def _many_provisions(path: Path) -> None:
    path.write_text("\n".join(f"第{n}条 医保异地结算。" for n in range(1, 20_100)), encoding="utf-8")


GBK_NAME = os.fsdecode("医保办法.txt".encode("gbk"))  # a name that is not UTF-8 on disk (surrogates in Python)
REC = {"_id": "r1", "title": "医保办法", "text": "第一条 推进医保异地结算，方便群众就医。"}
REC2 = {"_id": "r2", "title": "交通办法", "text": "第一条 推进城际铁路公交化运营。"}
BIDI = "\u202e医保\u202c异地\u2066结算\u2069"

ROWS = [
    # --- queries: Python API, CLI, HTTP
    pytest.param(*q("", expect=Ok(reason=REASON_EMPTY)), id="query-empty"),
    pytest.param(*q(" \t\n\u3000 ", expect=Ok(reason=REASON_EMPTY)), id="query-whitespace-only"),
    pytest.param(*q("医保异地结算" * 16_667, expect=Ok(warning="查询过长")), id="query-100000-chars"),
    pytest.param(*q("医保\x00异地\x07结\x1b算\x7f", expect=Ok(same_as=QUESTION)), id="query-control-chars"),
    pytest.param(*q("医\u200b保\u200d异地\ufeff结\u2060算", expect=Ok(same_as=QUESTION)), id="query-zero-width"),
    pytest.param(*q(BIDI, expect=Ok(same_as=QUESTION)), id="query-bidi-overrides"),
    pytest.param(*q("医保😀异地结算🏥"), id="query-emoji-mixed"),
    pytest.param(*q("😀🏥👍"), id="query-emoji-only"),
    pytest.param(*q('<script>alert(1)</script><img src=x onerror=alert(2)>医保'), id="query-html-js"),
    pytest.param(*q("'; DROP TABLE documents; -- \" OR 1=1"), id="query-sql-looking"),
    pytest.param(*q("медицинское страхование"), id="query-cyrillic"),
    pytest.param(*q("التأمين الصحي والتسوية"), id="query-arabic-rtl"),
    pytest.param(*q("医療保険の精算について"), id="query-japanese"),
    pytest.param(*q("의료보험 정산"), id="query-korean"),
    pytest.param(*q("醫保異地結算", expect=Ok()), id="query-traditional-chinese"),
    pytest.param(*q("cross-region settlement of medical insurance", expect=Ok(note="医保")), id="query-english"),
    pytest.param(*q(QUESTION, k=0, expect=Err((ValueError, "k must be a positive"), "k must be a positive",
                                              "结果数 k 必须是正整数")), id="k-zero"),
    pytest.param(*q(QUESTION, k=-5, expect=Err((ValueError, "k must be a positive"), "k must be a positive",
                                               "结果数 k 必须是正整数")), id="k-negative"),
    pytest.param(*q(QUESTION, k=10**9, expect=Ok(max_hits={"py": 14, "cli": 14, "http": 100, "rest": 100})), id="k-huge"),
    pytest.param(*q(QUESTION, k="many", expect=Err((ValueError, "k must be a whole number"), "Invalid value for '--k'",
                                                   "结果数 k 必须是整数")), id="k-not-a-number"),
    pytest.param(*q(QUESTION, expect=Err((ValueError, "mode must be one of"), "mode must be one of hybrid",
                                         "检索方式"), mode="regex"), id="filter-unknown-mode"),
    # Gradio's API ignores extra values; the JSON route refuses an unknown field, so a typo cannot widen a search
    pytest.param(*q(QUESTION, expect=Err((TypeError, "colour"), "No such option: --colour", Ok(),
                                         rest="未知参数 'colour'"), colour="red"), id="filter-unknown-name"),
    pytest.param(*q(QUESTION, expect=Ok(reason=REASON_FILTERED), region="火星"), id="filter-unknown-region"),
    pytest.param(*q(QUESTION, expect=Ok(reason=REASON_FILTERED), issuer="不存在的机关"), id="filter-unknown-issuer"),
    pytest.param(*q(QUESTION, expect=Err((ValueError, "year must be a whole number"), "Invalid value for '--year'",
                                         "年份必须是整数"), year="二〇一九"), id="filter-year-not-a-number"),
    pytest.param(*q(QUESTION, expect=Ok(reason=REASON_FILTERED), year=1850), id="filter-year-no-documents"),
    # one SearchRequest everywhere: an unknown document is a filter that matches nothing, on every surface
    pytest.param(*q(QUESTION, expect=Ok(reason=REASON_FILTERED), doc="../../etc/passwd"),
                 id="filter-doc-path-traversal"),
    # --- CLI-only input: arguments and files the other surfaces do not take ({ix} = the built index, {tmp} = a folder)
    pytest.param(*c("search", "\udcff\udcfe医保", "--index", "{ix}", says=("the query is not valid UTF-8",)),
                 id="cli-query-not-utf8"),
    pytest.param(*c("search", "医保", "--region", "\udcff", "--index", "{ix}", says=("region is not valid UTF-8",)),
                 id="cli-filter-not-utf8"),
    pytest.param(*c("search", "--queries", "{tmp}/q.jsonl", "--index", "{ix}", files={"q.jsonl": b"\xff\xfe{}"},
                    says=("q.jsonl", "not UTF-8")), id="cli-queries-file-not-utf8"),
    pytest.param(*c("search", "--queries", "{tmp}/q.jsonl", "--index", "{ix}",
                    files={"q.jsonl": '{"id": 1, "query": "医保"}\n{oops\n'.encode()},
                    says=("q.jsonl:2", "not valid JSON"), answers=1), id="cli-queries-file-bad-line"),
    pytest.param(*c("search", "--queries", "{tmp}/q.jsonl", "--index", "{ix}",
                    files={"q.jsonl": b'{"id": 1, "query": "\xe5\x8c\xbb\xe4\xbf\x9d"}\n' + b"[" * 100_000
                           + b"]" * 100_000 + b'\n{"id": 2, "query": "a\x00b"}\n{"id": 3, "query": "\xd2\xbd\xb1\xa3"}\n'
                           + b'{"id": 4, "query": "\xe7\xbb\x93\xe7\xae\x97"}\n'},
                    says=("q.jsonl:2", "nested too deeply", "q.jsonl:3", "NUL byte", "q.jsonl:4", "not UTF-8"),
                    answers=2), id="cli-queries-file-deep-nul-gbk-lines"),
    pytest.param(*c("search", "--queries", "{tmp}/q.jsonl", "--index", "{ix}", files={"q.jsonl": b'{"q": 1}\n'},
                    says=("q.jsonl:1", 'needs "id" and "query"')), id="cli-queries-file-missing-field"),
    pytest.param(*c("search", "医保", "--queries", "{tmp}/q.jsonl", "--index", "{ix}",
                    says=("either a QUERY or --queries",)), id="cli-query-and-queries-both"),
    pytest.param(*c("search", "医保", "--index", "{tmp}/nothing", says=("no index at", "policyqa ingest")),
                 id="cli-search-index-missing"),
    pytest.param(*c("docs", "--index", "{tmp}/nothing", says=("no index at", "policyqa ingest")),
                 id="cli-docs-index-missing"),
    pytest.param(*c("show", "../../etc/passwd", "--index", "{ix}", says=("no document", "policyqa docs")),
                 id="cli-show-unknown-doc"),
    pytest.param(*c("serve", "--index", "{ix}", "--auth", "nopassword", says=("--auth must look like user:password",)),
                 id="cli-serve-bad-auth"),
    pytest.param(*c("ingest", "{tmp}/a.txt", "--index", "{tmp}/notes.txt", "--no-progress",
                    files={"a.txt": GBK_TEXT.encode(), "notes.txt": b"my notes"},
                    says=("notes.txt", "not an index folder", "new or empty folder")), id="cli-index-is-a-file"),
    pytest.param(*c("ingest", "{tmp}/a.txt", "--index", "{tmp}/mine", "--no-progress",
                    files={"a.txt": GBK_TEXT.encode(), "mine/plan.docx": b"x", "mine/photo.jpg": b"y"},
                    says=("mine", "not an index", "photo.jpg", "plan.docx")), id="cli-index-is-a-folder-of-other-files"),
    pytest.param(*c("serve", "--index", "{ix}", "--public-url", "policy.example.gov.cn",
                    says=("--public-url must be an http(s) URL",)), id="cli-serve-bad-public-url"),
    # --- HTTP-only input: raw requests to the server
    pytest.param("http", dict(method="post", path="/gradio_api/upload",
                              files={"files": ("x.html", b"<script>1</script>")}), (403, "uploads are not accepted"),
                 id="http-upload-refused"),
    # over 1 MB: refused by the guard in front of every route before anything reads it (app/guard.py)
    pytest.param("http", dict(method="post", path="/gradio_api/upload",
                              files={"files": ("big.txt", b"x" * (2 * MB))}), (413, "请求体超过"),
                 id="http-upload-oversize-refused"),
    pytest.param("http", dict(method="post", path="/gradio_api/queue/join", content=b"[" * (2 * MB)),
                 (413, "request body over"), id="http-gradio-oversize-body"),
    pytest.param("http", dict(method="get", path="/config", headers={"host": "evil.example"}), (400, "Host"),
                 id="http-foreign-host"),
    pytest.param("http", dict(method="post", path="/gradio_api/cancel", json={"session_hash": "x", "fn_index": 5,
                                                                             "event_id": "e"}), (404, "not found"),
                 id="http-cancel-closed"),
    pytest.param("http", dict(method="post", path="/gradio_api/reset", json={"event_id": "e"}), (404, "not found"),
                 id="http-reset-closed"),
    pytest.param("http", dict(method="get", path="/monitoring"), (404, "not found"), id="http-monitoring-closed"),
    pytest.param("http", dict(method="post", path="/gradio_api/call/search", content=b"{not json"), (422, ""),
                 id="http-search-malformed-json"),
    pytest.param("http", dict(method="get", path="/gradio_api/file=/etc/passwd"), (403, ""), id="http-file-route-path"),
    pytest.param("http", dict(method="post", path="/api/search", content=b"{not json"), (400, "JSON"),
                 id="api-search-malformed-json"),
    pytest.param("http", dict(method="post", path="/api/search", content=b"\xff\xfe{}"), (400, "UTF-8"),
                 id="api-search-body-not-utf8"),
    pytest.param("http", dict(method="post", path="/api/search", json=["医保", 10]), (400, "JSON 对象"),
                 id="api-search-body-not-an-object"),
    pytest.param("http", dict(method="post", path="/api/search", json={"k": 3}), (400, "缺少问题"),
                 id="api-search-missing-query"),
    pytest.param("http", dict(method="post", path="/api/search", json={"query": ["医保"]}), (400, "必须是一段文字"),
                 id="api-search-query-not-text"),
    pytest.param("http", dict(method="post", path="/api/search", json={"query": "医保", "region": 5}),
                 (400, "地区必须是文字"), id="api-search-filter-not-text"),
    pytest.param("http", dict(method="post", path="/api/search", content=b'{"query": "' + b"a" * (2 * MB) + b'"}'),
                 (413, "请求体超过"), id="api-search-oversize-body"),
    pytest.param("http", dict(method="delete", path="/api/search"), (405, "只接受 GET 或 POST"),
                 id="api-search-wrong-method"),
    pytest.param("http", dict(method="get", path="/api/search?q=%FF%FE"), (400, "不是 UTF-8"),
                 id="api-search-query-string-not-utf8"),
    pytest.param("http", dict(method="get", path="/api/search?q=a&q=b"), (400, "出现了多次"),
                 id="api-search-repeated-parameter"),
    pytest.param("http", dict(method="post", path="/api/search", content=b'{"query": "a", "query": "b"}'),
                 (400, "appears more than once"), id="api-search-duplicate-key"),
    pytest.param("http", dict(method="post", path="/api/search", content=b"[" * 100_000), (400, "nested too deeply"),
                 id="api-search-deep-nesting"),
    pytest.param("http", dict(method="post", path="/api/search", content=b'{"query": "a", "k": 1e999}'),
                 (400, "k must be a whole number"), id="api-search-k-1e999"),
    pytest.param("http", dict(method="post", path="/api/search", content=b'{"query": "a", "k": Infinity}'),
                 (400, "k must be a whole number"), id="api-search-k-infinity"),
    pytest.param("http", dict(method="post", path="/api/search", content=b'{"query": "a", "year": -Infinity}'),
                 (400, "year must be a whole number"), id="api-search-year-infinity"),
    pytest.param("http", dict(method="post", path="/api/search", content=b'{"query": "a", "k": NaN}'),
                 (400, "k must be a whole number"), id="api-search-k-nan"),
    pytest.param("http", dict(method="post", path="/gradio_api/call/search", json={"data": ["医保"]}),
                 ("error", None), id="http-search-missing-inputs"),
    # --- files: pipeline and `policyqa ingest`
    pytest.param(*f("bin.txt", _write(bytes(range(256)) * 8), Refused(("binary",))), id="file-binary"),
    pytest.param(*f("empty.txt", _write(b""), Refused(("empty",))), id="file-empty"),
    pytest.param(*f("blank.md", _write(" \n\t\r\n\u3000\n"), Refused(("empty",))), id="file-whitespace-only"),
    pytest.param(*f("bad.txt", _write(bytes(range(0x80, 0x100)) * 20), Refused(("undecodable",))),
                 id="file-undecodable-bytes"),
    pytest.param(*f("gbk.txt", _write(GBK_TEXT.encode("gbk")), Indexed(finds="异地就医直接结算", docs=1)),
                 id="file-gbk-no-declaration"),
    pytest.param(*f("gbk.html", _write(f"<html><body><p>{GBK_TEXT}</p></body></html>".encode("gbk")),
                    Indexed(finds="异地就医直接结算", docs=1)), id="html-gbk-no-declaration"),
    pytest.param(*f("trunc.pdf", lambda p: p.write_bytes(_pdf()[:-150]), Refused(("truncated",))), id="pdf-truncated"),
    pytest.param(*f("secret.pdf", lambda p: p.write_bytes(_pdf("s3cret")), Refused(("encrypted",))),
                 id="pdf-encrypted"),
    pytest.param(*f("huge.txt", _big, Refused(("too large", "limit 50 MB"))), id="file-50MB-text"),
    pytest.param(*f("deep.html", _write("<div>" * 20_000 + "第一条 内容。" + "</div>" * 20_000),
                    Refused(("nested", "limit 1000"))), id="html-deeply-nested"),
    pytest.param(*f("loop_a.txt", _loop, Refused(("symlink loop",))), id="file-symlink-loop"),
    pytest.param(*f("locked.txt", _write(GBK_TEXT), Refused(("permission denied",))), id="file-unreadable"),
    pytest.param(*f("a.xlsx", _write("一些文字"), Refused(("unsupported file type",))), id="file-unsupported-type"),
    pytest.param(*f("missing.txt", None, Refused(("no such file or folder",))), id="path-missing"),
    pytest.param(*f("c.jsonl", _jsonl("{oops", REC, "[1, 2]", REC2),
                    Indexed(finds="异地结算", skipped=("c.jsonl:1", "bad line skipped", "c.jsonl:3"), docs=2)),
                 id="jsonl-bad-lines"),
    pytest.param(*f("c.jsonl", _jsonl({"title": "无编号", "text": "第一条 内容。"}),
                    Refused(("missing '_id'",))), id="jsonl-missing-id"),
    pytest.param(*f("c.jsonl", _jsonl(REC, {**REC2, "_id": "r1"}),
                    Indexed(finds="异地结算", skipped=("c.jsonl:2", "duplicate id 'r1'"), docs=1)),
                 id="jsonl-duplicate-ids"),
    pytest.param(*f("c.jsonl", _jsonl({"_id": "r9", "text": ""}), Refused(("has no text",))), id="jsonl-empty-text"),
    pytest.param(*f("c.jsonl", _jsonl(REC, "[" * 100_000 + "]" * 100_000, '{"_id": ' + "[" * 5000 + "]" * 5000 + "}",
                                      REC2),
                    Indexed(finds="异地结算", skipped=("c.jsonl:2", "nested too deeply", "c.jsonl:3"), docs=2)),
                 id="jsonl-line-nested-100000-deep"),
    pytest.param(*f("c.jsonl", _write(json.dumps(REC, ensure_ascii=False).encode() + b'\n{"_id": "x", "text": "a\x00b"}\n'
                                      + json.dumps(REC2, ensure_ascii=False).encode() + b"\n"),
                    Indexed(finds="异地结算", skipped=("c.jsonl:2", "NUL byte"), docs=2)), id="jsonl-line-with-nul-byte"),
    pytest.param(*f("c.jsonl", _write(json.dumps(REC, ensure_ascii=False).encode() + b"\n"
                                      + json.dumps(REC2, ensure_ascii=False).encode("gbk") + b"\n"),
                    Indexed(finds="异地结算", skipped=("c.jsonl:2", "not valid UTF-8"), docs=1)),
                 id="jsonl-one-line-not-utf8"),
    pytest.param(*f("c.jsonl", _jsonl(REC, '{"_id": "s", "text": "\\udc80医保"}', REC2),
                    Indexed(finds="异地结算", skipped=("c.jsonl:2", "surrogate"), docs=2)),
                 id="jsonl-lone-surrogate-escape"),
    pytest.param(*f(GBK_NAME, _write(GBK_TEXT), Indexed(finds="异地就医直接结算", docs=1)), id="file-name-not-utf8"),
    pytest.param(*f("bomb.docx", lambda p: p.write_bytes(_docx(25 * MB)), Refused(("MB of XML", "limit 20 MB",
                                                                                  "zip bomb"))),
                 id="docx-inflates-to-25MB-of-xml"),
    pytest.param(*f("paras.docx", lambda p: p.write_bytes(_docx(paragraphs=100_001)),
                    Refused(("paragraphs in word/document.xml", "limit 100,000"))), id="docx-100001-tiny-paragraphs"),
    pytest.param(*f("liar.docx", _lying_docx, Refused(("not a readable .docx", "CRC"))), id="docx-lying-zip-header"),
    pytest.param(*f("ok.docx", lambda p: p.write_bytes(_docx()), Indexed(finds="异地就医直接结算", docs=1)),
                 id="docx-normal"),
    pytest.param(*f("many.txt", _many_provisions, Refused(("too many provisions", "limit 20,000"))),
                 id="file-over-20000-provisions"),
    pytest.param(*f("folder", _symlinks_out, Indexed(finds="异地就医直接结算", docs=1, skipped=(
        "passwd.txt: symlink to /etc/passwd, outside the folder", "up.txt: symlink to", "chain.txt: symlink to"))),
                 id="dir-symlinks-leading-outside"),
    pytest.param(*f("folder", _index_inside, Indexed(finds="异地就医直接结算", docs=1)), id="dir-with-an-index-inside"),
]


# ---------------------------------------------------------------- fixtures
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _snapshot(index_dir: Path) -> dict[str, str]:
    return {p.relative_to(index_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(index_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def base_index(tmp_path_factory) -> Path:
    ix = tmp_path_factory.mktemp("bad_input") / "ix"
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    return ix


@pytest.fixture(scope="module")
def searcher(base_index) -> Searcher:
    return Searcher.load(base_index, HashEmbedder())


@pytest.fixture(scope="module")
def server(searcher):
    from app.serve import serve

    port = _free_port()
    demo = serve(None, port=port, searcher=searcher, block=False)
    yield f"http://127.0.0.1:{port}"
    demo.close()


def http_search(url: str, query, k=10, mode="hybrid", doc=None, region=None, issuer=None, year=None,
                **unknown) -> tuple[str, object]:
    """The documented HTTP call: POST the 7 inputs, then read the event stream; ("complete"|"error", payload)."""
    data = [query, k, mode, doc, region, issuer, year, *unknown.values()]
    with httpx.Client(timeout=30) as c:
        r = c.post(f"{url}/gradio_api/call/search", json={"data": data})
        r.raise_for_status()
        stream = c.get(f"{url}/gradio_api/call/search/{r.json()['event_id']}").text
    events = [(b.split("\n")[0].removeprefix("event: "), json.loads(b.split("\ndata: ", 1)[1]))
              for b in stream.strip().split("\n\n") if "\ndata: " in b]
    final = [e for e in events if e[0] in ("complete", "error")]
    assert final, stream
    kind, payload = final[-1]
    return kind, (payload[0] if kind == "complete" else (payload or {}).get("error"))


def rest_search(url: str, query, k=10, **fields) -> tuple[int, dict]:
    """The JSON route: one POST of the fields; (status, JSON body)."""
    r = httpx.post(f"{url}/api/search", json={"query": query, "k": k, **fields}, timeout=30)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    return r.status_code, r.json()


def _cli_search_args(query, k, filters, extra) -> list[str]:
    args = ["search", query, "--json", "--k", str(k)]
    for name, value in filters.items():
        args += [f"--{name}", str(value)]
    return [*args, *extra]


# ---------------------------------------------------------------- the table
@pytest.mark.parametrize("kind, spec, expect", ROWS)
def test_bad_input(kind, spec, expect, request, tmp_path, monkeypatch):
    if kind == "query":
        _check_query(spec, expect, request)
    elif kind == "http":
        _check_http(spec, expect, request.getfixturevalue("server"))
    elif kind == "cli":
        base = request.getfixturevalue("base_index")
        before = _snapshot(base)
        for name, data in spec["files"].items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_bytes(data)
        given = _snapshot(tmp_path)
        args = [a.format(ix=base, tmp=tmp_path) for a in spec["args"]]
        code, out, err = request.getfixturevalue("run_cli")(*args)
        if isinstance(expect, CliSkipped):  # the good lines answered, each bad one reported with file:line
            assert code == 1 and all(line.startswith("跳过 skipped: ") for line in err.splitlines()), (code, err)
            assert len([line for line in out.splitlines() if line.startswith("# ")]) == expect.answers, out
        else:
            assert code == 2 and err.startswith("错误 / error: ") and err.count("\n") == 1, (code, err)
        for word in expect.says:
            assert word in err, (word, err)
        assert _snapshot(base) == before
        assert {k: v for k, v in _snapshot(tmp_path).items() if k in given} == given  # the user's files untouched
    else:
        _check_file(spec, expect, request, tmp_path, monkeypatch)


def _ids(hits) -> list[str]:
    return [h["provision_id"] if isinstance(h, dict) else h.provision_id for h in hits]


def _check_query(spec, expect, request) -> None:
    searcher, url, base = (request.getfixturevalue(n) for n in ("searcher", "server", "base_index"))
    run_cli = request.getfixturevalue("run_cli")
    query, k, filters = spec["query"], spec["k"], spec["filters"]
    before = _snapshot(base)
    want = {"py": expect.py, "cli": expect.cli, "http": expect.http} if isinstance(expect, Err) else dict.fromkeys(
        ("py", "cli", "http"), expect)

    if isinstance(want["py"], Ok):
        resp = searcher.query(query, k, **filters)
        _check_ok("py", want["py"], query, list(resp.hits), resp.reason, list(resp.warnings), searcher, k,
                  list(resp.notes))
    else:
        with pytest.raises(want["py"][0], match=want["py"][1]):
            searcher.query(query, k, **filters)

    code, out, err = run_cli(*_cli_search_args(query, k, filters, spec["cli_args"]), "--index", str(base))
    if isinstance(want["cli"], Ok):
        assert code == 0, err
        data = json.loads(out)
        assert data["query"] == query  # echoed verbatim, as data
        _check_ok("cli", want["cli"], query, data["hits"], data["reason"], data["warnings"], searcher, k,
                  data["notes"])
    else:
        flat = " ".join(re.sub("[\u2500-\u257f]", " ", err).split())  # typer may draw a box around usage errors
        assert code == 2 and want["cli"] in flat and not out, (code, err)
        assert len(err) < 1500, err  # a short message (typer's usage box at most), not a trace

    kind, payload = http_search(url, query, k, **filters)
    if isinstance(want["http"], Ok):
        assert kind == "complete", payload
        assert payload["query"] == query
        _check_ok("http", want["http"], query, payload["hits"], payload["reason"], payload["warnings"], searcher,
                  k, payload["notes"])
    else:
        assert kind == "error" and want["http"] in (payload or ""), payload
        assert "Traceback" not in payload and "/work" not in payload and "site-packages" not in payload

    rest = want["http"] if not isinstance(expect, Err) or expect.rest is None else expect.rest
    status, payload = rest_search(url, query, k, **filters)
    if isinstance(rest, Ok):
        assert status == 200, payload
        assert payload["query"] == query
        _check_ok("rest", rest, query, payload["hits"], payload["reason"], payload["warnings"], searcher, k,
                  payload["notes"])
        assert payload == http_search(url, query, k, **filters)[1]  # the same JSON as Gradio's API
    else:
        assert status == 400 and rest in payload["error"], (status, payload)
        assert set(payload) == {"error"}
    assert _snapshot(base) == before  # no query ever writes to the index


def _check_ok(surface, ok: Ok, query, hits, reason, warnings, searcher, k, notes=()) -> None:
    if ok.reason is not None:
        assert reason == ok.reason and not hits, (surface, reason)
    else:
        assert hits or reason, surface  # hits, or an empty list with the reason why
    if ok.warning:
        assert any(ok.warning in w for w in warnings), (surface, warnings)
    if ok.note:
        assert hits and any(ok.note in n for n in notes), (surface, notes)
    if ok.same_as is not None:
        assert hits and _ids(hits) == _ids(searcher.search(ok.same_as, k)), surface
    if surface in ok.max_hits:
        assert 0 < len(hits) <= ok.max_hits[surface], (surface, len(hits))


def _check_http(spec, expect, url) -> None:
    status, text = expect
    spec = dict(spec)
    with httpx.Client(timeout=30) as c:
        r = c.request(spec.pop("method"), url + spec.pop("path"), **spec)
        if status == "error":  # accepted, then the event stream reports an error, with no internal details
            assert r.status_code == 200
            stream = c.get(f"{url}/gradio_api/call/search/{r.json()['event_id']}").text
            assert stream.startswith("event: error") and "Traceback" not in stream and "/work" not in stream, stream
            return
    assert r.status_code == status and text in r.text, (r.status_code, r.text[:300])
    assert "Traceback" not in r.text and "root:" not in r.text


def _check_file(spec, expect, request, tmp_path, monkeypatch) -> None:
    base = request.getfixturevalue("base_index")
    run_cli = request.getfixturevalue("run_cli")
    src = tmp_path / "in"
    src.mkdir()
    path = src / spec["name"]
    if spec["make"] is not None:
        spec["make"](path)
    if spec["name"] == "locked.txt":  # chmod 0 does not stop root; deny the read itself as well
        path.chmod(0)
        real = Path.read_bytes
        monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(
            PermissionError(13, "Permission denied", str(self))) if self.name == "locked.txt" else real(self))
    for surface in ("api", "cli"):
        ix = tmp_path / f"ix_{surface}"
        shutil.copytree(base, ix)
        before = _snapshot(ix)
        if surface == "api":
            try:
                report = ingest_paths([path], ix, progress=False, embedder=HashEmbedder())
                message, code = "\n".join(f"{e.path}: {e.reason}" for e in report.errors), (1 if report.errors else 0)
            except (ValueError, FileNotFoundError) as exc:
                message, code = str(exc), 2
        else:
            code, out, message = run_cli("ingest", str(path), "--index", str(ix), "--no-progress")
        if isinstance(expect, Refused):
            assert code == 2, (surface, code, message)
            for word in (spec["name"], *expect.says):
                assert word in message, (surface, word, message)
            assert "unchanged" in message
            assert _snapshot(ix) == before, surface  # never a partially written index
        else:
            assert code == (1 if expect.skipped else 0), (surface, message)
            for word in expect.skipped:
                assert word in message, (surface, word, message)
            s = Searcher.load(ix, HashEmbedder())
            assert expect.docs is None or len(s.documents) == expect.docs
            assert expect.finds in s.search(expect.finds, 1)[0].text
        assert not list(ix.parent.glob(f".{ix.name}.*")), "a build directory was left behind"
