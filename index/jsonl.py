"""JSON Lines, one line at a time: a bad line (NUL byte, bytes that are not text, bad or too deeply nested JSON) is
reported as ``file:line`` with the reason and skipped; the good lines are kept.  The corpus reader (``read_jsonl``,
called by ``index.read.read_path``) and the query-file reader (``index.request.read_query_file``) both split here."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from index.decode import ReadError, decode_text, display_path, doc_id_for, source_path
from index.types import RawDocument, Source


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


def _jsonl_record(obj: dict, file_id: str) -> tuple[str, str, str | None, dict]:
    """(doc_id, text, title, meta_hint) of one line: BEIR (_id/title/text) or the policies layout (content/dept/…)."""
    if "_id" in obj:
        text = obj.get("text")
        if not isinstance(text, str):
            raise ValueError("no 'text' string")
        return str(obj["_id"]), text, obj.get("title") or None, {"layout": "beir"}
    if "content" in obj:  # ../shared/corpora/policies.jsonl: release_time, source (URL), dept, title_en, content
        text = obj["content"]
        if not isinstance(text, str):
            raise ValueError("'content' is not a string")
        source = str(obj.get("source") or "")
        hint = {"layout": "policies", "issuer": obj.get("dept") or None, "date": obj.get("release_time") or None,
                "url": source if source.startswith("http") else None, "collection": obj.get("sheet")}
        key = "\x1f".join(str(obj.get(k, "")) for k in ("title", "title_en", "release_time", "dept")) + text[:500]
        doc_id = f"{file_id}/{hashlib.sha1(key.encode('utf-8')).hexdigest()[:12]}"
        return doc_id, text, obj.get("title") or obj.get("title_en") or None, hint
    raise ValueError("missing '_id' (BEIR layout: _id, title, text)")


def _valid_unicode(*texts: object) -> bool:
    # JSON may escape a lone surrogate ("\udc80"): such text cannot be written to the index's UTF-8 files
    try:
        for text in texts:
            str(text).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_jsonl(path: Path, data: bytes, root: Path | None, problems: list[ReadError] | None) -> list[RawDocument]:
    """One RawDocument per line; bad lines (NUL bytes, not text, bad or too deeply nested JSON), missing ids and
    duplicate ids are reported to ``problems`` as ``file:line`` and skipped — the good lines are kept."""
    split = split_lines(data, lambda whole: decode_text(whole, path))
    encoding = split.encoding
    file_id = doc_id_for(path, root)
    recorded = source_path(path, root)
    docs: list[RawDocument] = []
    seen: dict[str, int] = {}
    issues: list[ReadError] = [ReadError(f"{display_path(path)}:{n}", f"bad line skipped: {reason}")
                               for n, reason in split.bad]
    for n, line in split.lines:
        if not line.strip():
            continue
        where = f"{display_path(path)}:{n}"
        try:
            obj = parse_line(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            doc_id, body, title, hint = _jsonl_record(obj, file_id)
            if not _valid_unicode(doc_id, body, title or "", *hint.values()):
                raise ValueError("a string holds an unpaired surrogate escape (\\udXXX): not valid Unicode text")
        except (ValueError, RecursionError) as exc:  # RecursionError: str() of a deeply nested '_id'
            reason = "JSON nested too deeply" if isinstance(exc, RecursionError) else exc
            issues.append(ReadError(where, f"bad line skipped: {reason}"))
            continue
        if doc_id in seen:
            issues.append(ReadError(where, f"duplicate id {doc_id!r} (first on line {seen[doc_id]}); line skipped"))
            continue
        if not body.strip():
            issues.append(ReadError(where, f"record {doc_id!r} has no text; line skipped"))
            continue
        seen[doc_id] = n
        sha = hashlib.sha256(body.encode("utf-8")).hexdigest()
        source = Source(f"{recorded}#{doc_id}", "jsonl", sha, hint.get("url"), encoding)
        docs.append(RawDocument(doc_id, body, source, title, hint))
    issues.sort(key=lambda e: int(e.path.rsplit(":", 1)[1]))
    if problems is not None:
        problems.extend(issues)
    if not docs:
        reason = issues[0].reason if issues else "no records"
        raise ReadError(path, f"no usable JSONL records ({len(issues)} bad lines; first: {reason})")
    return docs
