"""Near-duplicate documents (the same 通知 as a web page and as a PDF) found with MinHash and merged into one.

Shingles are the document's clauses after NFKC folding with punctuation and whitespace removed, so the web
rendering ("(五)…,") and the PDF rendering ("（五）…，") of a clause are the same shingle, while hard wraps,
page numbers and site chrome have already been cleaned away.  Clause shingles (rather than character
n-grams) keep MinHash fast on the 60 MB LawRefBook corpus.

Two documents merge when the estimated Jaccard similarity of their clause sets is at least ``THRESHOLD`` (0.7):
the two renderings of the Hunan–Greater Bay Area plan score 0.96, while different documents sharing the
same boilerplate (the other Hunan notices in the default corpus) stay below 0.02.  They never merge when both
carry a 文号 and the numbers differ, when neither title (punctuation-folded) contains the other (cities adopt
the same model regulation), or when both are dated more than ``MAX_DAYS_APART`` apart (LawRefBook keeps
successive versions of a law, which are near-identical but are different instruments).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import replace

from datasketch import MinHash, MinHashLSH

from index.types import Document

THRESHOLD = 0.7
NUM_PERM = 128
MAX_DAYS_APART = 31
MIN_SHINGLES = 8  # shorter documents (single articles, BEIR records) are never merged
_CLAUSE = re.compile(r"[。！？；;，,、：:\n!?]+")
_STRIP = re.compile(r"[\s\W_]+", re.UNICODE)
_FULLWIDTH = re.compile(r"[\uff01-\uff5e（）．，：；。、“”‘’—]")


def shingles(text: str) -> set[bytes]:
    """Clause shingles of a text: NFKC-folded, punctuation-free clauses of at least 4 characters."""
    folded = unicodedata.normalize("NFKC", text)
    out = set()
    for clause in _CLAUSE.split(folded):
        key = _STRIP.sub("", clause)
        if len(key) >= 4:
            out.add(key.encode("utf-8"))
    return out


def _sha1_hash32(data: bytes) -> int:
    return int.from_bytes(hashlib.sha1(data).digest()[:4], "little")


def minhash(items: set[bytes]) -> MinHash:
    """MinHash signature of a shingle set (deterministic: fixed seed and hash)."""
    m = MinHash(num_perm=NUM_PERM, seed=1, hashfunc=_sha1_hash32)
    if items:
        m.update_batch(list(items))
    return m


def _date(doc: Document) -> dt.date | None:
    try:
        return dt.date.fromisoformat(doc.date) if doc.date else None
    except ValueError:
        return None


def compatible(a: Document, b: Document) -> bool:
    """False when metadata says the two are different instruments (文号, titles or dates disagree)."""
    if a.doc_number and b.doc_number and a.doc_number != b.doc_number:
        return False
    ta, tb = (_STRIP.sub("", unicodedata.normalize("NFKC", d.title)) for d in (a, b))
    if ta and tb and ta not in tb and tb not in ta:
        return False  # e.g. the same model regulation adopted by three cities
    da, db = _date(a), _date(b)
    return not (da and db and abs((da - db).days) > MAX_DAYS_APART)


def find_duplicates(docs: list[Document], threshold: float = THRESHOLD,
                    keep: frozenset[str] = frozenset()) -> list[list[int]]:
    """Groups (indices into ``docs``, each of two or more) of near-duplicate documents; ids in ``keep`` never merge."""
    sets = [shingles(d.text) if d.id not in keep else set() for d in docs]
    eligible = [i for i, s in enumerate(sets) if len(s) >= MIN_SHINGLES]
    if len(eligible) < 2:
        return []
    lsh = MinHashLSH(threshold=max(0.3, threshold - 0.2), num_perm=NUM_PERM)
    sigs: dict[int, MinHash] = {}
    for i in eligible:
        sigs[i] = minhash(sets[i])
        lsh.insert(i, sigs[i])
    parent = {i: i for i in eligible}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in eligible:
        for j in lsh.query(sigs[i]):
            if j <= i:
                continue
            union = len(sets[i] | sets[j])
            jaccard = len(sets[i] & sets[j]) / union if union else 0.0  # exact, on the candidate pair only
            if jaccard >= threshold and compatible(docs[i], docs[j]):
                parent[root(j)] = root(i)
    groups: dict[int, list[int]] = {}
    for i in eligible:
        groups.setdefault(root(i), []).append(i)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def fullwidth_share(text: str) -> float:
    """Share of punctuation written full-width (the typeset official rendering scores high)."""
    full = len(_FULLWIDTH.findall(text))
    half = len(re.findall(r"[(),.:;!?]", text))
    return full / (full + half) if full + half else 0.0


def choose_canonical(docs: list[Document]) -> Document:
    """The rendering to keep: most full-width punctuation (the official typeset text, as in the PDF: （五）, 18．),
    then most metadata, then the smallest id (deterministic)."""
    def key(d: Document) -> tuple:
        filled = sum(x is not None for x in (d.doc_number, d.issuer, d.date, d.region, d.url))
        return (-round(fullwidth_share(d.text), 2), -filled, d.id)

    return min(docs, key=key)


def merge(docs: list[Document]) -> Document:
    """One document: the canonical rendering's text and provisions, every source, metadata gaps filled by others."""
    canonical = choose_canonical(docs)
    others = [d for d in sorted(docs, key=lambda d: d.id) if d is not canonical]
    fields = {}
    for name in ("doc_number", "issuer", "date", "region", "url"):
        if getattr(canonical, name) is None:
            fields[name] = next((getattr(d, name) for d in others if getattr(d, name) is not None), None)
    sources = tuple(canonical.sources) + tuple(s for d in others for s in d.sources)
    return replace(canonical, sources=sources, **fields)


def merge_duplicates(docs: list[Document], threshold: float = THRESHOLD,
                     keep: frozenset[str] = frozenset()) -> list[Document]:
    """Documents with near-duplicates merged (order follows each group's first member); ``keep`` ids stay apart."""
    groups = find_duplicates(docs, threshold, keep)
    merged_into: dict[int, Document | None] = {}
    for group in groups:
        merged = merge([docs[i] for i in group])
        merged_into[group[0]] = merged
        for i in group[1:]:
            merged_into[i] = None
    out = []
    for i, d in enumerate(docs):
        m = merged_into.get(i, d)
        if m is not None:
            out.append(m)
    return out
