"""Everyday Chinese words -> the official words of policy documents and statutes (a small thesaurus).

A citizen asks "去外地住院花的钱回来能报吗"; the provision says "异地就医直接结算".  BM25 matches neither 外地 nor
报, and the word features of the relevance stage see a question whose words the provision never uses.  Like the
dictionary translation of an English question (``index.translate``), each everyday word of the question (a whole
jieba token, so 报 in 报告 is not one) adds a *concept* whose alternatives are the official words of
``index/data/everyday_terms.tsv``: BM25 gives the concept the credit of its best alternative once (Pirkola), and only
official words that the index's own vocabulary knows are kept, so an entry can only add evidence that exists in the
collection.  The question's own words are searched as before; the dense model reads the question unchanged.

The table is the team's, written from general usage (not from evaluation questions); ``policyqa search`` shows the
words it used ("口语词对照：外地→异地"), and ``SearchSettings.translate`` switches it off with the English one.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from importlib import resources

from index.translate import Concept, read_term_table

TABLE = "everyday_terms.tsv"
#: Concepts kept per question (the first ones in question order): a long rambling question must not turn into a
#: bag of every official word.
MAX_CONCEPTS = 8


@functools.lru_cache(maxsize=1)
def table() -> dict[str, tuple[str, ...]]:
    """everyday word -> official words, read once from ``index/data/everyday_terms.tsv``."""
    text = resources.files("index").joinpath("data", TABLE).read_text(encoding="utf-8")
    return dict(read_term_table(text, f"index/data/{TABLE}", "word<TAB>official words"))


def concepts(text: str, tokens: list[str], known: Callable[[str], float]) -> tuple[Concept, ...]:
    """The everyday concepts of a question: each table word that is one of its ``tokens`` or, when it has two
    characters or more, appears in its ``text`` (jieba cuts 找工作 into 找/工作 and 能报吗 into 能报/吗), in question
    order, once; with the official words that ``known`` (the index's term frequency) finds and the question does
    not already say.  One-character words (报, 告, 税) count only as whole tokens."""
    t = table()
    said = set(tokens)
    found = {w: text.find(w) for w in t if (w in said) or (len(w) >= 2 and w in text)}
    out: list[Concept] = []
    for word in sorted(found, key=lambda w: (found[w] if found[w] >= 0 else len(text), -len(w))):
        if any(word in c.words[0] for c in out):  # 打工的 found: 打工 adds nothing more
            continue
        official = tuple(w for w in t[word] if w not in said and w not in text and known(w) > 0)
        if official and not set(official) <= {w for c in out for w in c.terms}:  # 能报销: 能报 and 报销 once
            out.append(Concept((word,), official))
        if len(out) == MAX_CONCEPTS:
            break
    return tuple(out)


def note(found: tuple[Concept, ...]) -> tuple[str, ...]:
    """The note shown with the results: which everyday words were also searched as which official words."""
    if not found:
        return ()
    return ("口语词对照检索：" + "、".join(f"{c.words[0]}→{'/'.join(c.terms)}" for c in found),)
