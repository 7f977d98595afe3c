"""File -> RawDocument(s): the only module that reads document files (txt, md, html, pdf, docx, jsonl)."""
from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

from index.decode import (  # noqa: F401  (ReadError & co. are also imported from here)
    ReadError, decode_text, display_path, doc_id_for, looks_binary, source_path)
from index.types import RawDocument, Source

#: File extension -> Source.format.
FORMATS = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".html": "html", ".htm": "html",
           ".pdf": "pdf", ".docx": "docx", ".jsonl": "jsonl"}
DEFAULT_MAX_BYTES = 50_000_000
_BLOCK_TAGS = r"p|div|br|li|tr|h[1-6]|section|article|table|ul|ol|dd|dt|blockquote|pre|hr|td|th|title"
_CONTENT_SELECTORS = ["#UCAP-CONTENT", ".TRS_Editor", "#zoom", ".zoom", ".article-content", ".pages_content",
                      "#content", ".content", "article", "main"]
_META_LABEL = re.compile(r"(?:发布|成文|印发)(?:时间|日期)\s*[:：]|原文(?:链接|地址)\s*[:：]|文\s*号\s*[:：]")
_DROP_TAGS = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg", "button",
              "select", "input", "template"]


def _decode_html(data: bytes, path: Path | str) -> tuple[str, str]:
    """An HTML page in the charset its <meta> declares (GB2312 pages are decoded as GB18030), else detected."""
    declared = re.search(rb"""charset\s*=\s*["']?([A-Za-z0-9_\-]+)""", data[:4096])
    if declared and not data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        name = declared.group(1).decode("ascii").lower()
        name = "gb18030" if name in ("gb2312", "gbk", "gb18030", "x-gbk", "cp936") else name
        try:
            return data.decode(name), name
        except (LookupError, UnicodeDecodeError):
            pass  # a wrong declaration: fall back to detection
    return decode_text(data, path)


def _require_text(text: str, path: Path | str) -> str:
    if not text.strip():
        raise ReadError(path, "no text (the file is empty or whitespace only)")
    return text


#: Element nesting deeper than this is no real page: lexbor builds the tree in time quadratic in the depth
#: (100,000 nested <div>s take 50 s), so such a file is refused before parsing.
MAX_HTML_DEPTH = 1000
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)\b[^>]*?(/?)>")
# void elements and elements whose end tag may be omitted never pile up on the parser's stack
_FLAT_TAGS = frozenset("area base br col colgroup dd dt embed hr img input li link meta option optgroup p param rb rp "
                       "rt rtc source tbody td tfoot th thead tr track wbr".split())


def html_depth(html: str) -> int:
    """The deepest element nesting in ``html``, counted from its tags (a fast scan, no parser)."""
    depth = deepest = 0
    for closing, name, self_closing in _TAG.findall(html):
        if self_closing or name.lower() in _FLAT_TAGS:
            continue
        if closing:
            depth = max(depth - 1, 0)
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


def html_to_text(html: str) -> tuple[str, str | None, str | None]:
    """HTML -> (main text with one block per line, <title>, 原文链接 URL); scripts, nav, header and footer dropped."""
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(html)
    h1, title_node = tree.css_first("h1"), tree.css_first("title")
    title = h1.text(strip=True) if h1 else None
    if not title and title_node:  # "<document title>_<site name>": keep the document part
        title = re.split(r"\s*(?:_|\||\s-\s|——)\s*", title_node.text(strip=True))[0]
    url = None
    for a in tree.css("a"):
        label = a.text(strip=True) + (a.parent.text(strip=True)[:20] if a.parent is not None else "")
        href = (a.attributes.get("href") or "").strip()
        if "原文" in label and href.startswith("http"):
            url = href
            break
    tree.strip_tags(_DROP_TAGS)
    body = tree.body or tree.root

    def block_text(node) -> str:
        marked = re.sub(rf"(?i)<(?:/?(?:{_BLOCK_TAGS}))(?:\s[^>]*)?/?>", lambda m: "\n" + m.group(0), node.html or "")
        return HTMLParser(marked).text(separator="")

    text = block_text(body)
    # Government CMSs wrap the document in a known container; menus and link lists around it are not the document.
    for selector in _CONTENT_SELECTORS:
        node = tree.css_first(selector)
        if node is not None and len(node.text(strip=True)) >= 200:
            labels = [line for line in text.split("\n") if _META_LABEL.search(line) and len(line.strip()) <= 120]
            text = "\n".join([title or "", *labels, block_text(node)])
            break
    return text, title or None, url


def pdf_to_text(data: bytes, path: Path | str) -> str:
    """The text layer of a PDF, pages separated by a blank line; encrypted, truncated and image-only PDFs refused.

    An encrypted PDF is read when its user password is empty (an owner password that only restricts printing
    or copying: every viewer opens it without asking, so the text is as public as an unprotected file's);
    one that needs a user password is refused as "encrypted PDF, password required" — no password guessing.
    pypdf decrypts RC4 by itself; AES needs the ``cryptography`` package (not a dependency), without which such a
    file is reported as "encrypted PDF that cannot be opened (DependencyError: …)".
    """
    from pypdf import PdfReader

    if b"%%EOF" not in data[-2048:]:
        raise ReadError(path, "truncated PDF (no end-of-file marker); re-download or re-export it")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # an owner-password-only PDF opens with the empty user password
            except Exception as exc:  # unsupported cipher, missing crypto dependency
                raise ReadError(path, f"encrypted PDF that cannot be opened ({type(exc).__name__}: {exc})") from exc
            if not opened:
                raise ReadError(path, "encrypted PDF, password required (only PDFs that open without one are read; "
                                      "export an unprotected copy)")
        pages = [page.extract_text() or "" for page in reader.pages]
    except ReadError:
        raise
    except Exception as exc:  # pypdf raises many types for damaged files
        raise ReadError(path, f"damaged or truncated PDF ({type(exc).__name__}: {exc})") from exc
    text = "\n\n".join(pages)
    if not text.strip():
        raise ReadError(path, "PDF has no text layer (a scanned image?); run OCR first")
    return text


def read_path(path: Path, root: Path | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
              problems: list[ReadError] | None = None) -> list[RawDocument]:
    """Read one file into RawDocument(s); raise ReadError with a plain reason for anything that is not a document.

    ``problems`` (optional) collects per-line problems of a JSONL file whose other lines are still returned.
    """
    path = Path(path)
    try:
        resolved = path.resolve(strict=True)
    except RuntimeError as exc:  # Python < 3.13 reports symlink loops this way
        raise ReadError(path, f"symlink loop ({exc})") from exc
    except FileNotFoundError as exc:
        raise ReadError(path, "file not found (or a broken symlink)") from exc
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            raise ReadError(path, "symlink loop") from exc
        raise ReadError(path, f"cannot open: {exc.strerror or exc}") from exc
    if resolved.is_dir():
        raise ReadError(path, "is a directory (pass it to ingest, which walks directories)")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        supported = ", ".join(sorted(set(FORMATS)))
        raise ReadError(path, f"unsupported file type {path.suffix or '(no extension)'!r}; supported: {supported}")
    try:
        size = resolved.stat().st_size
        if size > max_bytes:
            raise ReadError(path, f"too large: {size / 1e6:.1f} MB > limit {max_bytes / 1e6:.0f} MB")
        data = resolved.read_bytes()
    except PermissionError as exc:
        raise ReadError(path, "permission denied (cannot read the file)") from exc
    except OSError as exc:
        raise ReadError(path, f"cannot read: {exc.strerror or exc}") from exc
    if not data.strip():
        raise ReadError(path, "empty file (no text)")
    if fmt == "jsonl":
        from index.jsonl import read_jsonl

        return read_jsonl(path, data, root, problems)
    doc_id = doc_id_for(path, root)
    sha = hashlib.sha256(data).hexdigest()
    text, title, url, encoding = _TEXT_READERS[fmt](data, path)
    source = Source(source_path(path, root), fmt, sha, url, encoding)
    # LawRefBook names each version of a law "…(YYYY-MM-DD).md": the version date, when the text gives none.
    dated = re.search(r"\((\d{4}-\d{2}-\d{2})\)$", path.stem)
    hint = {"file_date": dated.group(1)} if dated else {}
    return [RawDocument(doc_id, _require_text(text, path), source, title, hint)]


def _read_plain(data: bytes, path: Path) -> tuple[str, str | None, str | None, str | None]:
    text, encoding = decode_text(data, path)
    return text, None, None, encoding


def _read_html(data: bytes, path: Path) -> tuple[str, str | None, str | None, str | None]:
    html, encoding = _decode_html(data, path)
    depth = html_depth(html)
    if depth > MAX_HTML_DEPTH:
        raise ReadError(path, f"HTML nested {depth} elements deep (limit {MAX_HTML_DEPTH}); not a normal web page "
                              "— save its text as .txt to index it")
    text, title, url = html_to_text(html)
    return text, title, url, encoding


def _read_pdf(data: bytes, path: Path) -> tuple[str, str | None, str | None, str | None]:
    if not data.startswith(b"%PDF"):
        raise ReadError(path, "not a PDF (no %PDF header)")
    return pdf_to_text(data, path), None, None, None


def _read_docx(data: bytes, path: Path) -> tuple[str, str | None, str | None, str | None]:
    from index.office import docx_to_text

    return docx_to_text(data, path), None, None, None


#: One reader per single-document format (JSONL, many documents a file, is ``read_jsonl``): bytes -> (text, title,
#: url, encoding).  A new format is one function here and one entry in ``FORMATS``.
_TEXT_READERS = {"txt": _read_plain, "md": _read_plain, "html": _read_html, "pdf": _read_pdf, "docx": _read_docx}
