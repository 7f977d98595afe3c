"""Zip-based office files (.docx): the text, read within limits on what the archive inflates to (zip bombs)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from index.decode import ReadError

#: The XML parts of a .docx together (document.xml, styles, numbering, …: what python-docx parses), inflated.
#: A real 600-page report has ~10 MB; python-docx takes ~1.2 s and ~25 MB of memory per MB of paragraph XML
#: (a 200 KB file inflating to 50 MB of XML took 20 s and 610 MB), so past this the file is refused unread.
MAX_DOCX_XML_BYTES = 20_000_000
#: Parts in one archive: a .docx has a few dozen; a central directory of millions of entries costs memory to list.
MAX_ZIP_MEMBERS = 5_000
#: Paragraphs (``<w:p>``, table cells' included) in word/document.xml: python-docx's cost follows their number more
#: than the bytes (100,000 tiny ones in 3.4 MB of XML: 3.6 s, 110 MB), and a 600-page report has ~20,000.
MAX_DOCX_PARAGRAPHS = 100_000
_XML_SUFFIXES = (".xml", ".rels")


def _zip_entries(data: bytes) -> int | None:
    """The entry count in the end-of-central-directory record (read before zipfile lists the entries), or None."""
    tail = data[-(65_535 + 22):]
    at = tail.rfind(b"PK\x05\x06")
    return int.from_bytes(tail[at + 10:at + 12], "little") if at >= 0 and len(tail) >= at + 12 else None


def _capped_read(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, path: Path | str) -> bytes:
    # The declared size was checked already; a header can lie, so the inflated bytes are counted too.
    out, got = [], 0
    with archive.open(info) as fh:
        while block := fh.read(1 << 20):
            got += len(block)
            if got > cap:
                raise ReadError(path, f"inflates past the limit of {MAX_DOCX_XML_BYTES / 1e6:.0f} MB of XML "
                                      f"(part {info.filename} is larger than its header says): a zip bomb or a "
                                      "damaged file; not read")
            out.append(block)
    return b"".join(out)


def safe_docx_bytes(data: bytes, path: Path | str) -> bytes:
    """A copy of the .docx holding only what text extraction needs, read within the limits: every XML part, read
    through a cap on its inflated size; media, fonts and embedded objects emptied (never inflated).  ReadError
    when the declared or the actual sizes pass ``MAX_DOCX_XML_BYTES`` or the archive has too many parts."""
    entries = _zip_entries(data)
    if entries is not None and entries > MAX_ZIP_MEMBERS:  # 0xFFFF: a ZIP64 archive, which no .docx needs
        raise ReadError(path, f"zip archive with {entries} parts (limit {MAX_ZIP_MEMBERS}); not a normal .docx")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        raise ReadError(path, f"not a readable .docx (not a zip archive: {exc})") from exc
    if len(infos) > MAX_ZIP_MEMBERS:
        raise ReadError(path, f"zip archive with {len(infos)} parts (limit {MAX_ZIP_MEMBERS}); not a normal .docx")
    xml = [i for i in infos if i.filename.lower().endswith(_XML_SUFFIXES) and not i.is_dir()]
    declared = sum(i.file_size for i in xml)
    if declared > MAX_DOCX_XML_BYTES:
        raise ReadError(path, f"inflates to {declared / 1e6:.0f} MB of XML (limit {MAX_DOCX_XML_BYTES / 1e6:.0f} MB"
                              f", from {len(data) / 1e6:.1f} MB on disk): a zip bomb or not a normal document; "
                              "not read — save it as .txt or split it to index it")
    xml_names = {i.filename for i in xml}
    out = io.BytesIO()
    left = MAX_DOCX_XML_BYTES
    try:
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as copy:
            for info in infos:
                if info.is_dir():
                    continue
                body = b""
                if info.filename in xml_names:
                    body = _capped_read(archive, info, left, path)
                    left -= len(body)
                    paragraphs = body.count(b"<w:p>") + body.count(b"<w:p ")
                    if paragraphs > MAX_DOCX_PARAGRAPHS:
                        raise ReadError(path, f"{paragraphs:,} paragraphs in {info.filename} (limit "
                                              f"{MAX_DOCX_PARAGRAPHS:,}): generated or a zip bomb, not a normal "
                                              "document; not read")
                copy.writestr(info.filename, body)
    except ReadError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        # zipfile stops at a part's declared size and then finds its CRC wrong: a lying header ends here
        raise ReadError(path, f"not a readable .docx ({type(exc).__name__}: {exc})") from exc
    return out.getvalue()


def docx_to_text(data: bytes, path: Path | str) -> str:
    """Paragraphs and tables of a .docx in document order, one line each; a table row as a Markdown row
    ("| 任务 | 牵头单位 |"), a merged cell once.  Page headers and footers are left out (page furniture).
    Read within the limits of ``safe_docx_bytes``."""
    import docx
    from docx.table import Table

    data = safe_docx_bytes(data, path)
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
    except Exception as exc:
        raise ReadError(path, f"not a readable .docx ({type(exc).__name__}: {exc})") from exc
    lines = []
    for block in blocks:
        if not isinstance(block, Table):
            lines.append(block.text)
            continue
        for row in block.rows:
            cells: list[str] = []
            for cell in row.cells:  # python-docx repeats a merged cell's text in every grid column it spans
                text = " ".join(cell.text.split())
                if not cells or text != cells[-1]:
                    cells.append(text)
            if any(cells):
                lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
