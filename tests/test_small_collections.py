"""eval/relevance/small.py: the small 5-document collections that the stage's rules are checked on."""
from __future__ import annotations

from eval.relevance.question_sets import Item, split_of
from eval.relevance.small import GROUP, GROUPS, groups

DOCS = [f"doc{i:03d}" for i in range(400)]


def _questions() -> list[Item]:
    out = []
    for i, d in enumerate(DOCS):
        out.append(Item(f"q{i}", f"问题{i}", "policies", split_of(d), "formal", frozenset({f"{d}#1"})))
        if i % 7 == 0:
            out.append(Item(f"o{i}", f"无关{i}", "policies", split_of(d), "absent", frozenset()))
    return out


def test_groups_are_drawn_the_same_way_every_time_train_first_each_from_its_own_split():
    pol = _questions()
    first, again = list(groups(DOCS, pol)), list(groups(DOCS, pol))
    assert [(s, g, sorted(d)) for s, g, d, _, _ in first] == [(s, g, sorted(d)) for s, g, d, _, _ in again]
    assert [s for s, *_ in first] == ["train"] * GROUPS["train"] + ["dev"] * GROUPS["dev"]
    for split, _, docs, inside, negatives in first:
        assert len(docs) == GROUP and all(split_of(d) == split for d in docs)
        assert inside and all({p.split("#")[0] for p in q.gold} <= docs for q in inside)
        assert all(q.split == split and not ({p.split("#")[0] for p in q.gold} & docs) for q in negatives)
        assert sum(1 for q in negatives if q.gold) == min(2 * len(inside), sum(
            1 for q in pol if q.split == split and q.gold and not ({p.split("#")[0] for p in q.gold} & docs)))
        assert 0 < sum(1 for q in negatives if not q.gold) <= 10
