"""Provisions -> chunks: one chunk per provision when it fits the model, else pieces split at Chinese sentence marks."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from index.types import Chunk, Document, Provision

if TYPE_CHECKING:  # imported when chunking: searching a built index never needs it (a quarter second)
    from langchain_text_splitters import RecursiveCharacterTextSplitter

#: Paragraph, line, sentence (。！？), clause (；，), then characters as a last resort.
SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", "，", ""]
PATH_JOINER = " › "


def context_prefix(doc: Document, provision: Provision) -> str:
    """The context put before a provision's text in the embedded text: title + heading path + newline."""
    return f"{doc.title} {PATH_JOINER.join(provision.path)}".strip() + "\n"


def embed_text_for(doc: Document, provision: Provision, text: str, embed_context: bool = True) -> str:
    """What the embedder sees for ``text`` (a provision or a piece of one)."""
    return context_prefix(doc, provision) + text if embed_context else text


def _splitter(budget: int, overlap: int, length: Callable[[str], int]) -> RecursiveCharacterTextSplitter:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        separators=SEPARATORS,
        keep_separator="end",  # "。" stays with the sentence it ends
        chunk_size=max(budget, 1),
        chunk_overlap=min(overlap, max(budget // 4, 0)),
        length_function=length,
        strip_whitespace=True,
    )


def _pieces(text: str, fits: Callable[[str], bool], budget: int, overlap: int, length: Callable[[str], int]) -> list[str]:
    # Token counts of pieces add up only approximately (subword merges at the joins), so shrink the budget
    # until every piece really fits.
    for _ in range(8):
        pieces = [p for p in _splitter(budget, overlap, length).split_text(text) if p]
        if all(fits(p) for p in pieces):
            return pieces
        budget = int(budget * 0.85)
    return pieces


def chunk_document(
    doc: Document,
    count_tokens: Callable[[str], int],
    max_tokens: int,
    overlap_tokens: int = 32,
    embed_context: bool = True,
) -> list[Chunk]:
    """Chunks of ``doc``: ``Document.text[c.start:c.end] == c.text``; no chunk's embed text exceeds ``max_tokens``.

    ``count_tokens`` counts model tokens of a passage (prompt and specials included), as ``Embedder.count_tokens``.
    """
    chunks: list[Chunk] = []
    base = count_tokens("")  # prompt + specials, paid once per chunk

    def length(piece: str) -> int:
        return max(count_tokens(piece) - base, 0)

    for prov in doc.provisions:
        if not prov.text.strip():
            continue
        embed = embed_text_for(doc, prov, prov.text, embed_context)
        if count_tokens(embed) <= max_tokens:
            chunks.append(Chunk(prov.id, prov.id, doc.id, prov.text, embed, prov.start, prov.end))
            continue
        prefix = embed_text_for(doc, prov, "", embed_context)
        budget = max_tokens - count_tokens(prefix)
        if budget < 16:
            # A title/path so long it leaves no room: embed the pieces without context rather than truncating them.
            prefix, budget = "", max_tokens - base
        pieces = _pieces(prov.text, lambda p: count_tokens(prefix + p) <= max_tokens, budget, overlap_tokens, length)
        last_pos, last_end = -1, 0
        for n, piece in enumerate(pieces):
            # Pieces come in order and each adds text after the last one's end (they overlap by at most the overlap):
            # look for it where it ends past that end, so a repeated run ("aaaa…") is not placed at an earlier copy.
            pos = prov.text.find(piece, max(last_pos + 1, last_end - len(piece) + 1))
            if pos < 0:
                pos = prov.text.find(piece, last_pos + 1)
            if pos < 0:  # cannot happen with strip-only splitting; fail loudly rather than give wrong offsets
                raise ValueError(f"chunker lost the offset of a piece of provision {prov.id}")
            last_pos, last_end = pos, max(last_end, pos + len(piece))
            start = prov.start + pos
            chunks.append(Chunk(f"{prov.id}~{n}", prov.id, doc.id, piece, prefix + piece, start, start + len(piece)))
    return chunks


def chunk_documents(
    docs: Iterable[Document],
    count_tokens: Callable[[str], int],
    max_tokens: int,
    overlap_tokens: int = 32,
    embed_context: bool = True,
) -> list[Chunk]:
    """``chunk_document`` over several documents, in order."""
    return [c for d in docs for c in chunk_document(d, count_tokens, max_tokens, overlap_tokens, embed_context)]
