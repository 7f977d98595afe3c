"""A question's extra BM25 concepts and the note that says which words they added: an English question's CC-CEDICT
translation (``index.translate``), a Chinese one's everyday words in the documents' words (``index.everyday``:
外地 -> 异地)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from index.normalize import fold, to_simplified

if TYPE_CHECKING:
    from index.lexical import LexicalIndex
    from index.translate import Concept

CJK = re.compile("[\u3400-\u9fff]")
LATIN = re.compile("[A-Za-z]{2}")
NOTE_WORDS = 30  # dictionary words listed in the note (the rest are counted)
#: How an English query's note begins (``translation_note``); the page recognises the note by it.
ENGLISH_NOTE = "英文查询按 CC-CEDICT 词典与政策术语表对照中文词检索："


def concepts_of(text: str, lexical: LexicalIndex) -> tuple[Concept, ...]:
    """The extra concepts of ``text``, only words the index knows (empty for a question with neither Chinese nor a
    Latin word)."""
    if CJK.search(text):
        from index import everyday

        return everyday.concepts(fold(to_simplified(text)), lexical.tokenizer.tokenize(text), lexical.term_frequency)
    if not LATIN.search(text):
        return ()
    from index.translate import QueryTranslator

    return QueryTranslator.default().translate(text, weight=lexical.term_frequency)


def words(concepts: tuple[Concept, ...]) -> tuple[str, ...]:
    """The Chinese words of the concepts, each once, in concept order."""
    return tuple(dict.fromkeys(w for c in concepts for w in c.terms))


def notes(text: str, concepts: tuple[Concept, ...]) -> tuple[str, ...]:
    """The note shown with the results: the everyday words' mapping (Chinese) or the dictionary words (English)."""
    if CJK.search(text):
        from index import everyday

        return everyday.note(concepts)
    return translation_note(words(concepts))


def translation_note(terms: tuple[str, ...]) -> tuple[str, ...]:
    """The note shown with an English query's results: the Chinese words it was matched with (empty: none)."""
    if not terms:
        return ()
    shown = "、".join(terms[:NOTE_WORDS]) + (f" 等 {len(terms)} 个词" if len(terms) > NOTE_WORDS else "")
    return (ENGLISH_NOTE + shown,)


def official_text(text: str, concepts: tuple[Concept, ...]) -> str | None:
    """A Chinese question with each of its everyday words replaced by its first official word (去外地住院 ->
    去异地住院), for a second dense query (``QuerySettings.everyday_dense``); None when nothing would change (an
    English question, or no everyday word found in ``text`` as written)."""
    if not concepts or not CJK.search(text):
        return None
    out = text
    for c in concepts:
        if c.words[0] in out:
            out = out.replace(c.words[0], c.terms[0])
    return out if out != text else None
