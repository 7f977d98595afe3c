"""Text normalisation shared by indexing and querying: NFKC, invisible characters stripped, traditional -> simplified."""
from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

#: Queries longer than this are cut (a pasted document is not a question, and jieba/encoding time grows with length).
MAX_QUERY_CHARS = 2000

# C0/C1 controls except tab/newline/CR, zero-width characters, bidi embeddings/overrides/isolates, BOM, soft hyphen.
_INVISIBLE = re.compile(
    "[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]"
)
_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=1)
def _t2s():
    # OpenCC loads its phrase tables once; conversion is then a fast C++ call.
    import opencc

    return opencc.OpenCC("t2s")


def strip_invisible(text: str) -> str:
    """Remove control, zero-width and bidi-override characters (they break matching and can spoof display)."""
    return _INVISIBLE.sub("", text)


def to_simplified(text: str) -> str:
    """Convert traditional Chinese to simplified with OpenCC t2s (simplified text passes through unchanged)."""
    return _t2s().convert(text) if text else text


def fold(text: str) -> str:
    """NFKC, invisible characters removed, whitespace runs collapsed to one space, trimmed: the form texts are compared in."""
    return _SPACES.sub(" ", strip_invisible(unicodedata.normalize("NFKC", text))).strip()


def normalize_for_match(text: str) -> str:
    """``fold`` + traditional -> simplified + lower case: what the lexical tokenizer sees, on both sides."""
    return to_simplified(fold(text)).lower()


@dataclass(frozen=True)
class CleanQuery:
    """A query after input checks: the text to search with and any warnings for the user."""

    text: str
    warnings: tuple[str, ...] = ()


def clean_query(query: str, max_chars: int = MAX_QUERY_CHARS) -> CleanQuery:
    """Fold a raw user query (NFKC, invisible characters stripped) and truncate it to ``max_chars`` with a warning."""
    if not isinstance(query, str):
        raise TypeError(f"query must be a str, got {type(query).__name__}")
    text = fold(query)
    warnings: tuple[str, ...] = ()
    if len(text) > max_chars:
        warnings = (f"查询过长（{len(text)} 字），已截断为前 {max_chars} 字",)
        text = text[:max_chars].strip()
    return CleanQuery(text, warnings)
