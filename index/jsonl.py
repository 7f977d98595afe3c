"""JSON Lines, one line at a time: a bad line (NUL byte, bytes that are not text, bad or too deeply nested JSON) is
reported as ``file:line`` with the reason and skipped; the good lines are kept.  Used by the corpus reader
(``index.read``) and the query-file reader (``index.request.read_query_file``)."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class JsonlLines:
    """The decodable lines of a JSONL file (line number, text), the encoding used, and the lines refused whole."""

    lines: tuple[tuple[int, str], ...]
    encoding: str
    bad: tuple[tuple[int, str], ...]  # (line number, reason)


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def split_lines(data: bytes, decode_whole: Callable[[bytes], tuple[str, str]] | None = None) -> JsonlLines:
    """Split on LF as bytes (a JSON string may hold U+2028 and other characters ``str.splitlines`` breaks on).

    A line with a NUL byte is refused on its own.  The file is UTF-8 (a UTF-8 BOM is dropped) — or, when not one
    line of it is valid UTF-8, whatever ``decode_whole`` makes of the whole file (e.g. GBK detection; UTF-16 with a
    BOM goes there too); without ``decode_whole`` such a file gives no lines, only bad ones.  When only some lines
    are not UTF-8, those lines are refused: one damaged line never turns the whole file into mojibake."""
    if data.startswith(_UTF16_BOMS) and decode_whole is not None:
        text, encoding = decode_whole(data)
        return JsonlLines(tuple(enumerate(text.split("\n"), 1)), encoding, ())
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    raw = data.split(b"\n")
    lines: list[tuple[int, str]] = []
    bad: list[tuple[int, str]] = []
    undecodable: list[int] = []
    for n, line in enumerate(raw, 1):
        if b"\x00" in line:
            bad.append((n, "NUL byte in the line (binary data, not JSON text)"))
            continue
        try:
            lines.append((n, line.decode("utf-8")))
        except UnicodeDecodeError as exc:
            undecodable.append(n)
            bad.append((n, f"not valid UTF-8 ({exc.reason} at byte {exc.start} of the line)"))
    if undecodable and not any(text.strip() for _, text in lines) and decode_whole is not None:
        kept = b"\n".join(b"" if b"\x00" in line else line for line in raw)  # NUL lines stay refused
        text, encoding = decode_whole(kept)
        decoded = text.split("\n")
        if len(decoded) == len(raw):
            nul = {n for n, reason in bad if reason.startswith("NUL")}
            return JsonlLines(tuple((n, t) for n, t in enumerate(decoded, 1) if n not in nul), encoding,
                              tuple((n, r) for n, r in bad if n in nul))
    return JsonlLines(tuple(lines), "utf_8", tuple(sorted(bad)))


def parse_line(text: str) -> object:
    """One line's JSON value; ValueError with a plain reason for bad JSON or nesting too deep for the parser."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError
        raise ValueError(f"not valid JSON ({exc})") from None
