"""The cross-encoder verifier's training pairs (eval/relevance/train_reranker.py ``--passage sentence``): each
candidate is read as its best sentence + title and headings, so an answer at the end of a long item is not cut off."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

import eval.relevance.sentences as sentences
from eval.relevance.candidates import Item
from eval.relevance.question_sets import Hitlite
from eval.relevance.train_reranker import pairs, passage
from index.fake import HashEmbedder

LONG = ("18．强化医疗卫生合作。推动两地医疗机构开展合作办医，共建区域医疗中心和专科联盟。"
        "实现异地就医即时结算并报销医保费用。")


def _item(query: str, texts: list[str], labels: list[int]) -> Item:
    hits = [Hitlite(f"d{i}", f"d{i}#1", f"d{i}#1", "某省实施方案", ("第三章", f"{i}"), t, 1.0 - i / 10)
            for i, t in enumerate(texts)]
    it = Item("q1", query, "policies", "train", "colloquial", frozenset(h.provision_id for h, y in zip(hits, labels)
                                                                        if y))
    it.hits, it.labels, it.sig = hits, np.asarray(labels), SimpleNamespace(query=query)
    return it


def test_sentence_passages_are_each_candidates_best_sentence_then_its_heading(tmp_path, monkeypatch):
    monkeypatch.setattr(sentences, "VECTORS", tmp_path / "sentence-vectors.pkl")  # never the real training cache
    emb = HashEmbedder(dim=256)
    query = "实现异地就医即时结算并报销医保费用"  # the fake embedder: shared characters, close vectors
    it = _item(query, [LONG, "推进养老保险信息互通，方便群众办事。加快建设统一的公共服务平台。", "第三项"], [1, 0, 0])
    sentences.add_sentence_cosines([it], emb, top=2)
    assert it.sig.best_sentences[0] == "实现异地就医即时结算并报销医保费用。"
    assert it.sig.sent[0] > it.sig.sent[1] > -1.0 and it.sig.sent[2] == -1.0  # the third is past ``top``: not encoded
    assert passage(it, 0, "sentence") == "实现异地就医即时结算并报销医保费用。\n某省实施方案 › 第三章 › 0"
    assert passage(it, 0, "chunk").endswith(LONG)
    got = pairs([it], negatives=1, mode="sentence")
    assert [(p.split("\n")[0], y) for _, p, y in got] == [("实现异地就医即时结算并报销医保费用。", 1.0),
                                                         (it.sig.best_sentences[1], 0.0)]
    assert (tmp_path / "sentence-vectors.pkl").is_file()


def test_an_unanswered_question_gives_its_own_number_of_negatives():
    it = _item("养老金每年涨多少", ["甲文本一二三四五", "乙文本一二三四五", "丙文本一二三四五"], [0, 0, 0])
    it.sig.best_sentences = tuple(h.text for h in it.hits)
    assert len(pairs([it], negatives=1, mode="sentence")) == 1
    assert len(pairs([it], negatives=1, mode="sentence", ooc_negatives=3)) == 3
    assert all(y == 0.0 for _, _, y in pairs([it], negatives=1, ooc_negatives=3))
