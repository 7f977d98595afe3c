"""What the page keeps between events and puts in its address: the last answer (for export and votes) and the
question, k and filters of a shared link (``?q=…&k=5&region=…``)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from index.normalize import MAX_QUERY_CHARS

ALL = ""
FILTERS = ("doc", "region", "issuer", "year")
URL_FIELDS = ("q", "k", "mode", *FILTERS)


def url_state(params: Mapping[str, str]) -> dict[str, Any] | None:
    """The question, k and filters a shared URL carries (``?q=…&k=5&region=萍乡市``), or None without ``q``."""
    query = params.get("q") or ""
    if not query.strip():
        return None
    state: dict[str, Any] = {"q": query[:MAX_QUERY_CHARS * 2]}
    try:
        state["k"] = max(1, min(int(params.get("k") or 10), 30))
    except ValueError:
        state["k"] = 10
    state["mode"] = params.get("mode") if params.get("mode") in ("hybrid", "dense", "bm25") else "hybrid"
    for name in FILTERS:
        state[name] = params.get(name) or ALL
    return state


class Kept(tuple):
    """What the page keeps of its last answer for export and feedback: the (question, hits) pair, plus the filters
    it was asked with and the Chinese words of an English question."""

    def __new__(cls, query: str, hits, filters: Mapping | None = None, terms: Sequence[str] = ()):
        self = super().__new__(cls, (query, tuple(hits)))
        self.filters, self.terms = dict(filters or {}), tuple(terms)
        return self

    def __getnewargs__(self):  # copy/deepcopy (Gradio's State) rebuild it from these
        return (self[0], self[1], self.filters, self.terms)


def as_state(state) -> dict:
    """The kept state as a dict (a plain (query, hits) pair also works)."""
    if isinstance(state, Mapping):
        return {"query": "", "hits": (), **state}
    query, hits = state or ("", ())
    return {"query": query, "hits": hits, "filters": getattr(state, "filters", {}), "terms": getattr(state, "terms", ())}
