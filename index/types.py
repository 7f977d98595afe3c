"""The small frozen records that the pipeline stages hand each other.

read -> ``RawDocument`` -> parse -> ``Document`` (with ``Provision``s) -> chunk -> ``Chunk``
-> index -> search -> ``Hit``.  Plain dicts appear only at JSON boundaries (``to_dict``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Source:
    """Where one rendering of a document came from."""

    path: str  # path as given to ingest (relative to the ingest root when possible)
    format: str  # "txt" | "md" | "html" | "pdf" | "docx" | "jsonl"
    sha256: str  # hash of the raw bytes (for a jsonl record: of the record's text)
    url: str | None = None  # 原文链接 / source URL when the text states one
    encoding: str | None = None  # detected text encoding, e.g. "utf_8", "gb18030"


@dataclass(frozen=True)
class RawDocument:
    """One file (or one BEIR record) read and decoded, before cleaning/parsing."""

    doc_id: str  # stable id: relative path without extension, or the BEIR ``_id``
    text: str  # decoded text (for pdf: text layer; for html: main text)
    source: Source
    title_hint: str | None = None  # a title given by the container (BEIR title, html <title>)
    meta_hint: dict = field(default_factory=dict, compare=False, hash=False)  # e.g. jsonl fields


@dataclass(frozen=True)
class Provision:
    """The unit an official cites: an article, a numbered task, or a paragraph under its headings."""

    id: str  # stable: derived from doc id + heading path + text, never a row number
    doc_id: str
    path: tuple[str, ...]  # heading path, verbatim headings, outermost first (may be empty)
    text: str  # verbatim provision text (as in the cleaned document)
    start: int  # character offsets of ``text`` in ``Document.text``
    end: int
    lead_units: str | None = None  # 牵头单位 of a task item
    resp_units: str | None = None  # 责任单位 of a task item

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        d = asdict(self)
        d["path"] = list(self.path)
        return d


@dataclass(frozen=True)
class Document:
    """A cleaned, parsed document with its metadata and provisions."""

    id: str
    title: str
    text: str  # cleaned text; provision offsets point into it
    provisions: tuple[Provision, ...]
    sources: tuple[Source, ...]  # more than one when near-duplicate renderings were merged
    doc_number: str | None = None  # 文号, e.g. 湘政办发〔2020〕8号
    issuer: str | None = None  # issuing body
    date: str | None = None  # ISO date (YYYY-MM-DD) when known
    region: str | None = None  # province / city, e.g. 湖南省, 萍乡市
    url: str | None = None  # source URL, when stated

    @property
    def year(self) -> int | None:
        """Year of ``date``, if any."""
        return int(self.date[:4]) if self.date and self.date[:4].isdigit() else None

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        d = asdict(self)
        d["provisions"] = [p.to_dict() for p in self.provisions]
        d["sources"] = [asdict(s) for s in self.sources]
        return d


@dataclass(frozen=True)
class Chunk:
    """What gets indexed: a provision, or one piece of a long provision."""

    id: str  # provision id, or provision id + "~" + piece number
    provision_id: str
    doc_id: str
    text: str  # verbatim text shown to the user
    embed_text: str  # text given to the embedder (title + heading path + text, if enabled)
    start: int  # offsets in Document.text
    end: int


@dataclass(frozen=True)
class Hit:
    """One search result: structured fields only (document, heading path, item); display strings are made in app/."""

    doc_id: str
    provision_id: str
    chunk_id: str
    title: str
    text: str
    score: float
    path: tuple[str, ...] = ()
    doc_number: str | None = None
    region: str | None = None
    issuer: str | None = None
    date: str | None = None
    lead_units: str | None = None
    resp_units: str | None = None
    sources: tuple[str, ...] = ()
    #: P(this provision answers the question), calibrated (index/relevance.py); None when the index has no stage
    relevance: float | None = None
    confident: bool = True  # relevance at or above the stage's threshold (True where there is no stage)

    def to_dict(self) -> dict:
        """The hit's own fields as JSON (the surfaces add the display citation: ``app.export.hit_json``)."""
        return {
            "doc_id": self.doc_id,
            "provision_id": self.provision_id,
            "title": self.title,
            "text": self.text,
            "score": round(float(self.score), 6),
            "relevance": None if self.relevance is None else round(float(self.relevance), 4),
            "confident": bool(self.confident),
            "chunk_id": self.chunk_id,
            "path": list(self.path),
            "doc_number": self.doc_number,
            "region": self.region,
            "issuer": self.issuer,
            "date": self.date,
            "lead_units": self.lead_units,
            "resp_units": self.resp_units,
            "sources": list(self.sources),
        }
