"""One search request, validated in one place for every surface (CLI, page, /api/search, Python), and its response."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from index.types import Hit

MODES = ("hybrid", "dense", "bm25")

REASON_EMPTY = "查询为空：请输入要查找的内容"
REASON_NOTHING = "未找到相关条款"
REASON_FILTERED = "没有符合筛选条件的文件"
REASON_WEAK = "未找到相关条款：最接近的条款与问题关联很弱"
#: The relevance stage found no provision that answers the question: the closest ones are still returned, weak.
REASON_NO_ANSWER = "未找到直接回答该问题的条款"


class RequestError(ValueError):
    """A request refused before searching; the message is bilingual (中文 / English) and names the field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _bad_text(value: str) -> bool:
    # Bytes that are not UTF-8 reach Python (argv, a query string decoded with surrogateescape) as lone surrogates.
    return any("\ud800" <= ch <= "\udfff" for ch in value)


def _text(field: str, value: Any, label: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RequestError(field, f"{label}必须是文字 / {field} must be text, got {value!r}")
    if _bad_text(value):
        raise RequestError(field, f"{label}不是有效的 UTF-8 文本 / {field} is not valid UTF-8 text")
    return value


def _whole(field: str, value: Any, label: str) -> int:
    """A whole number from an int, an integral float or a digit string; anything else is refused."""
    number: Any = value
    if isinstance(value, bool):
        number = None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if isinstance(number, float):
        number = int(number) if math.isfinite(number) and number.is_integer() else None
    if not isinstance(number, int):
        raise RequestError(field, f"{label}必须是整数 / {field} must be a whole number, got {value!r}")
    return number


@dataclass(frozen=True)
class SearchRequest:
    """What to search for: the question, how many hits, the retriever mode and the document filters."""

    query: str
    k: int = 10
    mode: str = "hybrid"
    doc: str | None = None
    region: str | None = None
    issuer: str | None = None
    year: int | None = None

    @classmethod
    def parse(cls, query: Any, k: Any = 10, mode: Any = "hybrid", doc: Any = None, region: Any = None,
              issuer: Any = None, year: Any = None, *, max_k: int | None = None) -> SearchRequest:
        """Validate raw values from any surface; RequestError (a ValueError) names the bad field.

        ``k`` may be a whole number as int, float or text; above ``max_k`` (a surface's cap) it is capped.  Empty
        filters mean "no filter"; ``year`` 0 or empty too.  An empty query is valid (it answers REASON_EMPTY)."""
        if query is None:
            query = ""
        if not isinstance(query, str):
            raise RequestError("query", f"问题必须是一段文字 / query must be text, got {type(query).__name__}")
        if _bad_text(query):
            raise RequestError("query", "问题不是有效的 UTF-8 文本 / the query is not valid UTF-8 text")
        k = 10 if k is None or k == "" else _whole("k", k, "结果数 k ")
        if k <= 0:
            raise RequestError("k", f"结果数 k 必须是正整数 / k must be a positive whole number, got {k}")
        if max_k is not None:
            k = min(k, max_k)
        mode = mode or "hybrid"
        if mode not in MODES:
            raise RequestError("mode", f"检索方式必须是 {'、'.join(MODES)} 之一 / mode must be one of "
                                       f"{', '.join(MODES)}, got {mode!r}")
        year_value = None if year in (None, "", 0, "0") else _whole("year", year, "年份")
        return cls(query, k, mode, _text("doc", doc, "文件"), _text("region", region, "地区"),
                   _text("issuer", issuer, "发文机关"), year_value)

    @property
    def filters(self) -> dict[str, Any]:
        """The document filters that are set."""
        return {k: v for k, v in (("doc", self.doc), ("region", self.region), ("issuer", self.issuer),
                                  ("year", self.year)) if v is not None}


@dataclass(frozen=True)
class SearchResponse:
    """Hits, best first, plus warnings (e.g. query truncated) and, when there are no hits, the reason why."""

    hits: tuple[Hit, ...]
    warnings: tuple[str, ...] = ()
    reason: str | None = None
    notes: tuple[str, ...] = ()  # how the query was read, e.g. the Chinese words an English query was matched with
    terms: tuple[str, ...] = ()  # those Chinese words (the page highlights and quotes by them too)
    query: str = ""  # the question as asked

    @property
    def found(self) -> bool:
        """At least one hit is presented as an answer (``confident``)."""
        return any(h.confident for h in self.hits)


def read_query_file(path, problems: list[str] | None = None) -> list[tuple[str, str, dict]]:
    """(id, text, the whole record) of each line of a JSON Lines queries file: ours ``{"id", "query"}`` or BEIR
    ``{"_id", "text"}`` (when a line has both, ours win).  The one reader of query files, for ``search --queries``
    and ``eval``.

    A bad line (bad or too deeply nested JSON, a NUL byte, bytes that are not UTF-8, no id or query) is a
    ``file:line: reason`` message: appended to ``problems`` and skipped, the good lines kept, when the caller
    collects them; else a RequestError.  A file with no good line at all is a RequestError either way."""
    from pathlib import Path

    from index.jsonl import parse_line, split_lines

    data = Path(path).read_bytes()
    split = split_lines(data)
    bad: list[tuple[int, str]] = [(n, f"{path}:{n}: 不是 UTF-8 文本 / not UTF-8 text ({reason}); save it as UTF-8"
                                   if reason.startswith("not valid UTF-8") else f"{path}:{n}: 含有 NUL 字节 / {reason}")
                                  for n, reason in split.bad]  # the splitter refuses a line for these two reasons
    out = []
    for n, line in split.lines:
        if not line.strip():
            continue
        try:
            rec = parse_line(line)
        except ValueError as exc:
            bad.append((n, f"{path}:{n}: 不是有效的 JSON / {exc}"))
            continue
        if not isinstance(rec, dict):
            bad.append((n, f"{path}:{n}: 不是 JSON 对象 / not a JSON object"))
            continue
        qid = rec["id"] if rec.get("id") is not None else rec.get("_id")
        text = rec["query"] if rec.get("query") is not None else rec.get("text")
        if qid is None or not isinstance(text, str) or isinstance(qid, (dict, list)):
            bad.append((n, f'{path}:{n}: 需要 "id" 和 "query" / needs "id" and "query" (or BEIR "_id" and "text")'))
            continue
        out.append((str(qid), text, rec))
    bad.sort()
    if bad and (problems is None or not out):
        if not out and split.bad and len(split.bad) == len(bad) and all(r.startswith("not valid UTF-8")
                                                                         for _, r in split.bad):
            raise RequestError("queries", f"{path} 不是 UTF-8 文本 / {path}: not UTF-8 text; save it as UTF-8")
        more = f" (and {len(bad) - 1} more bad lines)" if len(bad) > 1 else ""
        raise RequestError("queries", bad[0][1] + more)
    if problems is not None:
        problems.extend(message for _, message in bad)
    return out
