"""Chunker: one chunk per fitting provision, long ones split at sentence marks, offsets exact, limit respected."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fakes import HashEmbedder
from index.chunk import chunk_document, embed_text_for
from index_fixtures import GBA_TITLE, corpus, make_document

EMB = HashEmbedder(max_tokens=64)


def _check(doc, chunks, max_tokens):
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert EMB.count_tokens(c.embed_text) <= max_tokens
        assert c.embed_text.endswith(c.text)


def test_short_provisions_are_one_chunk_each_with_context():
    doc = corpus()[0]
    chunks = chunk_document(doc, EMB.count_tokens, 512)
    assert [c.id for c in chunks] == [p.id for p in doc.provisions]
    assert chunks[2].embed_text.startswith(GBA_TITLE + " 二、重点任务 › （五）深化公共服务对接合作 › 18．强化医疗卫生合作\n")
    _check(doc, chunks, 512)


def test_embed_context_off_embeds_the_bare_text():
    doc = corpus()[0]
    assert all(c.embed_text == c.text for c in chunk_document(doc, EMB.count_tokens, 512, embed_context=False))
    assert embed_text_for(doc, doc.provisions[0], "x", False) == "x"


def test_long_provision_is_split_at_sentence_ends():
    body = "".join(f"第{i}句讲的是医保异地就医结算的第{i}项安排。" for i in range(30))
    doc = make_document("long", "长文件", [(("一、",), body)])
    chunks = chunk_document(doc, EMB.count_tokens, 64, overlap_tokens=8)
    assert len(chunks) > 3
    assert all(c.provision_id == doc.provisions[0].id and c.id.startswith(doc.provisions[0].id + "~") for c in chunks)
    assert all(c.text.endswith("。") for c in chunks[:-1])
    _check(doc, chunks, 64)
    assert chunks[0].start == 0 and chunks[-1].end == len(body)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.text(alphabet="医保结算推进一体化。，；！\n ab", min_size=1, max_size=400), min_size=1, max_size=4),
    st.integers(min_value=24, max_value=120),
)
def test_property_no_text_lost_no_chunk_over_limit(bodies, limit):
    doc = make_document("p", "标题", [((f"{i}、",), b) for i, b in enumerate(bodies)])
    chunks = chunk_document(doc, EMB.count_tokens, limit, overlap_tokens=4)
    _check(doc, chunks, limit)
    for prov in doc.provisions:
        covered = set()
        for c in chunks:
            if c.provision_id == prov.id:
                covered.update(range(c.start, c.end))
        lost = {i for i in range(prov.start, prov.end) if i not in covered}
        assert all(doc.text[i].isspace() for i in lost)  # only whitespace between pieces may be dropped


def test_a_repeated_run_is_placed_where_each_piece_really_is():
    """Hypothesis found it: 21 identical characters over a 24-token limit split into 'a'*20 + an overlapping 'aaaaa';
    the second piece's offset was looked up from the first's start and landed on an earlier copy, losing a character."""
    doc = make_document("p", "标题", [(("0、",), "a" * 21)])
    chunks = chunk_document(doc, EMB.count_tokens, 24, overlap_tokens=4)
    _check(doc, chunks, 24)
    assert len(chunks) > 1 and chunks[-1].end == doc.provisions[0].end
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)
