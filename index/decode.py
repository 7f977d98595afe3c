"""What every reader shares: the error a file gets, how a file's path becomes its id and displayed name, and how its
bytes become text (UTF-8/UTF-16 with a BOM, else GB18030-family detection).  Split from ``index.read`` so that the
format readers (``index.jsonl``, ``index.office``) and the dispatcher import it without importing each other."""
from __future__ import annotations

import os
import re
from pathlib import Path


class ReadError(Exception):
    """A file that cannot be read as a document; ``reason`` says why in plain words."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{display_path(path)}: {reason}")
        self.path = display_path(path)
        self.reason = reason


def display_path(path: Path | str) -> str:
    r"""``path`` as valid text, for messages, document ids and the index's JSON.

    A name that is not UTF-8 on disk (typically GBK bytes: a file unzipped from a Chinese Windows archive, a Samba
    share) reaches Python with lone surrogates, which no UTF-8 file can hold.  Each such name part is decoded as
    GB18030 when its bytes are valid GB18030 (the GBK bytes of ``医保办法.txt`` give ``医保办法.txt``), else written with
    ``\xNN`` escapes; the file itself is still read through its real (bytes) name."""
    text = str(path)
    if not any("\ud800" <= ch <= "\udfff" for ch in text):
        return text
    parts = []
    for part in os.fsencode(text).split(b"/"):
        try:
            parts.append(part.decode("utf-8"))
        except UnicodeDecodeError:
            try:
                parts.append(part.decode("gb18030"))
            except UnicodeDecodeError:
                parts.append(part.decode("utf-8", "backslashreplace"))
    return "/".join(parts)


def doc_id_for(path: Path, root: Path | None) -> str:
    """Path relative to ``root`` without its extension, '/'-separated (the file name stem when outside root)."""
    try:
        rel = path.resolve().relative_to(root.resolve()) if root is not None else Path(path.name)
    except ValueError:
        rel = Path(path.name)
    return display_path(rel.with_suffix("").as_posix())


def source_path(path: Path, root: Path | None) -> str:
    """``path`` relative to the ingest root, '/'-separated, as recorded in ``Source.path``."""
    try:
        return display_path(path.resolve().relative_to(root.resolve()).as_posix() if root is not None else path)
    except ValueError:
        return display_path(path)


_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")


def looks_binary(data: bytes) -> bool:
    """NUL bytes or many control characters in the first 8 KB: not a text file."""
    sample = data[:8192]
    if b"\x00" in sample and not sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True
    controls = len(_CONTROL_BYTES.findall(sample))
    return bool(sample) and controls / len(sample) > 0.05


_CHINESE = ("gb18030", "gbk", "gb2312", "hz", "cp936")


def decode_text(data: bytes, path: Path | str = "<bytes>") -> tuple[str, str]:
    """Bytes -> (text, encoding): BOMs, then strict UTF-8, then charset-normalizer (GBK/GB18030 and others)."""
    for bom, enc in ((b"\xef\xbb\xbf", "utf_8"), (b"\xff\xfe", "utf_16_le"), (b"\xfe\xff", "utf_16_be")):
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(enc), enc
            except UnicodeDecodeError as exc:
                raise ReadError(path, f"starts with a {enc} byte-order mark but is not valid {enc}: {exc.reason}")
    if looks_binary(data):
        raise ReadError(path, "binary content (not text); expected UTF-8 or GBK text")
    try:
        return data.decode("utf-8"), "utf_8"
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is not None and best.encoding not in _CHINESE:
        # Short texts are ambiguous: "医保异地结算" in GBK is also valid Korean cp949 with the same (zero) chaos.
        # On a tie the Chinese reading wins; this is a corpus of Chinese documents.
        best = next((m for m in matches if m.encoding in _CHINESE and m.chaos <= best.chaos
                     and m.coherence >= best.coherence), best)
    if best is None or best.chaos > 0.3:
        raise ReadError(path, "undecodable bytes: neither UTF-8 nor GBK/GB18030 nor any encoding "
                              "that gives readable text")
    encoding = best.encoding
    if encoding in _CHINESE:
        encoding = "gb18030"  # superset: also decodes the rare characters GBK lacks
    try:
        return data.decode(encoding), encoding
    except (UnicodeDecodeError, LookupError):
        return str(best), best.encoding
