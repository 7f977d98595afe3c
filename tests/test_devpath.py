"""eval/relevance/devpath.py: the product-path dev figures every ship-or-not rule is decided on."""
from __future__ import annotations

import json

import pytest

from eval.relevance.candidates import Item
from eval.relevance.devpath import figures, main
from index.search import Searcher
from index.store import build_index
from index_fixtures import corpus
from test_relevance import _embedder, _stage

QUESTION = "哪些条款涉及医保异地结算"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("devpath")
    build_index(corpus(), root / "ix", _embedder(_stage(root / "stage")), progress=False)
    return root / "ix"


@pytest.fixture(scope="module")
def searcher(folder):
    return Searcher.load(folder)


def test_figures_count_rank_recall_abstention_and_kinds_per_group(searcher):
    hits = searcher.query(QUESTION, k=10).hits
    first, second = hits[0].provision_id, hits[1].provision_id
    items = [Item("a", QUESTION, "policies", "dev", "formal", frozenset({first})),
             Item("b", QUESTION, "policies", "dev", "colloquial", frozenset({second, "nowhere#1"})),
             Item("c", "海南离岛免税购物额度是多少", "policies", "dev", "absent", frozenset()),
             Item("a-en", QUESTION, "policies", "dev", "english", frozenset({"nowhere#2"}))]
    out = figures(searcher, items)
    zh, en = out["questions"], out["english_versions"]
    assert zh["answerable"] == 2 and zh["MRR@10"] == pytest.approx((1.0 + 0.5) / 2)
    assert zh["R@10"] == pytest.approx((1.0 + 0.5) / 2)
    assert zh["MRR@10_by_kind"] == {"colloquial": 0.5, "formal": 1.0}
    assert zh["ooc"] == 1 and zh["ooc_abstained"] == 1.0  # the linear stage finds nothing for it
    assert zh["false_abstain"] == 0.0
    assert en["answerable"] == 1 and en["MRR@10"] == 0.0 and en["ooc_abstained"] is None
    by_doc = figures(searcher, [Item("d", QUESTION, "stard", "stard-b", "beir", frozenset({hits[0].doc_id}))],
                     by_doc=True)
    assert by_doc["questions"]["MRR@10"] == 1.0


def test_the_command_judges_with_another_stage_and_settings(folder, tmp_path, capsys, monkeypatch):
    import eval.relevance.devpath as devpath

    monkeypatch.setattr(devpath, "stard_questions",
                        lambda: [Item("s", QUESTION, "stard", "stard-b", "beir", frozenset({"gba"}))])
    strict = _stage(tmp_path / "strict", threshold=0.999)
    main([str(folder), "stard", "--stage", str(strict), "--set", "candidates=50"])
    line = json.loads(capsys.readouterr().out)
    assert line["question_set"] == "stard" and line["settings"] == {"candidates": 50} and line["stage"] == str(strict)
    assert line["questions"]["false_abstain"] == 1.0  # nothing clears a 0.999 threshold


def test_fast_path_cut_is_the_highest_abstaining_on_at_most_five_percent():
    import numpy as np

    from eval.relevance.fastpath import cut

    # (best cosine, best top-5 coverage) of 20 answerable questions; a well-covered question never abstains
    ev = np.array([(0.40 + 0.02 * i, 0.1) for i in range(19)] + [(0.30, 0.9)])
    c, share = cut(ev)
    assert (c, share) == (0.42, 0.05)  # under 0.42: only 0.40, 1 of 20; under 0.43 also 0.42, 2 of 20
    assert cut(np.array([(0.1, 0.0)] * 10))[0] == 0.1  # nothing above the grid's floor keeps under 5 %
