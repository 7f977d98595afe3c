"""Metrics checked against hand-worked values and against an independent reference implementation."""
from __future__ import annotations

import math
import random

import pytest

from eval.metrics import abstention, calibrate_min_score, ir_metrics, latency_summary, mean_metrics


def test_hand_worked_two_relevant_one_miss_ahead():
    # ranks: x (miss), a (hit), b (hit); 2 relevant
    m = ir_metrics({"q": ["x", "a", "b"]}, {"q": {"a": 1, "b": 1}})["q"]
    assert m["recall@5"] == 1.0
    assert m["mrr@10"] == 0.5
    # DCG = 1/log2(3) + 1/log2(4); ideal = 1 + 1/log2(3)
    assert m["ndcg@10"] == pytest.approx((1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3)))


def test_hand_worked_relevant_at_rank_11_is_outside_mrr10():
    ranked = [f"d{i}" for i in range(10)] + ["gold"]
    m = ir_metrics({"q": ranked}, {"q": {"gold": 1}})["q"]
    assert m["recall@5"] == 0.0 and m["recall@10"] == 0.0
    assert m["recall@20"] == 1.0 and m["recall@100"] == 1.0
    assert m["mrr@10"] == 0.0  # trec_eval's recip_rank would give 1/11 without our truncation
    assert m["ndcg@10"] == 0.0


def test_hand_worked_one_of_three_found_at_rank_3():
    m = ir_metrics({"q": ["x", "y", "a", "z"]}, {"q": {"a": 1, "b": 1, "c": 1}})["q"]
    assert m["recall@5"] == pytest.approx(1 / 3)
    assert m["mrr@10"] == pytest.approx(1 / 3)
    # DCG = 1/log2(4) = 0.5; ideal = 1 + 1/log2(3) + 1/log2(4)
    assert m["ndcg@10"] == pytest.approx(0.5 / (1 + 1 / math.log2(3) + 0.5))


def test_rank_order_is_kept_not_retied_by_id():
    # With equal scores trec_eval would put "b" before "a" (ties broken by id); our order must stand.
    m = ir_metrics({"q": ["a", "b"]}, {"q": {"b": 1}})["q"]
    assert m["mrr@10"] == 0.5


def test_duplicates_count_once_and_missing_run_scores_zero():
    per_q = ir_metrics({"q1": ["a", "a", "a", "a", "a", "b"]}, {"q1": {"b": 1}, "q2": {"c": 1}, "q3": {}})
    assert per_q["q1"]["recall@5"] == 1.0  # b is the 2nd distinct item
    assert per_q["q2"] == {k: 0.0 for k in per_q["q2"]}  # answerable, nothing returned
    assert "q3" not in per_q  # unanswerable: scored by abstention instead
    assert mean_metrics(per_q)["recall@5"] == 0.5


def _reference(ranked, rel):
    """Textbook binary-relevance definitions, written independently of pytrec_eval."""
    seen = list(dict.fromkeys(ranked))
    out = {f"recall@{c}": len(set(seen[:c]) & set(rel)) / len(rel) for c in (5, 10, 20, 100)}
    out["mrr@10"] = next((1 / (i + 1) for i, d in enumerate(seen[:10]) if d in rel), 0.0)
    dcg = sum(1 / math.log2(i + 2) for i, d in enumerate(seen[:10]) if d in rel)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(len(rel), 10)))
    out["ndcg@10"] = dcg / idcg
    return out


def test_matches_reference_implementation_on_random_runs():
    rng = random.Random(7)
    pool = [f"p{i}" for i in range(150)]
    run, qrels = {}, {}
    for q in range(40):
        qrels[f"q{q}"] = {d: 1 for d in rng.sample(pool, rng.randint(1, 6))}
        run[f"q{q}"] = rng.sample(pool, rng.randint(0, 120))
    got = ir_metrics(run, qrels)
    for q in qrels:
        ref = _reference(run[q], qrels[q])
        for name, value in ref.items():
            assert got[q][name] == pytest.approx(value), (q, name)


def test_latency_percentiles():
    lat = latency_summary(list(range(1, 101)))
    assert lat["p50"] == pytest.approx(50.5)
    assert lat["p95"] == pytest.approx(95.05)
    assert latency_summary([])["n"] == 0


def test_abstention_rates():
    a = abstention({"a1": 3, "a2": 0, "o1": 0, "o2": 5, "o3": 0}, ["a1", "a2"], ["o1", "o2", "o3"])
    assert a["ooc_abstain_rate"] == pytest.approx(2 / 3)
    assert a["answerable_false_abstain_rate"] == 0.5
    assert abstention({}, [], [])["ooc_abstain_rate"] is None


def test_calibration_hand_worked():
    ranked = {
        "a1": [(0.9, True)], "a2": [(0.5, True)],  # answerable
        "o1": [(0.6, False)], "o2": [(0.2, False)],  # out of corpus
    }
    n_rel = {"a1": 1, "a2": 1, "o1": 0, "o2": 0}
    cal = calibrate_min_score(ranked, n_rel, at=5)
    # t=0.35 keeps both answers and drops o2: recall 1 - false answers 0.5 = 0.5; t=0.75 ties (0.5 - 0)
    # and the tie goes to the lower threshold.
    assert cal.threshold == pytest.approx(0.35)
    assert cal.objective == pytest.approx(0.5)
    assert cal.false_answer_rate == 0.5 and cal.false_abstain_rate == 0.0


def test_calibration_keeps_no_threshold_when_nothing_separates():
    ranked = {"a": [(0.3, False), (0.2, True)], "o": [(0.9, False)]}
    cal = calibrate_min_score(ranked, {"a": 1, "o": 0})
    # any threshold that silences "o" (>0.3) also silences "a": 1-1 = 0 vs no threshold 1-1 = 0 -> keep None
    assert cal.threshold is None and cal.recall == 1.0


def test_calibration_error_by_hand():
    from eval.metrics import calibration_error

    res = calibration_error([0.1, 0.9, 0.9, 0.1], [0, 1, 0, 1])
    assert res["ece"] == pytest.approx(0.4) and [b["n"] for b in res["bins"]] == [2, 2]
    assert calibration_error([0.25, 0.75], [0, 1])["ece"] == pytest.approx(0.25)
    assert calibration_error([1.0, 1.0], [1, 1])["ece"] == 0.0  # p = 1 falls in the last bin
    assert calibration_error([], [])["ece"] is None


def test_hit_at_1_is_the_share_with_a_relevant_first_item():
    per_q = ir_metrics({"a": ["x", "y"], "b": ["y", "x"]}, {"a": {"x": 1}, "b": {"x": 1}})
    assert per_q["a"]["hit@1"] == 1.0 and per_q["b"]["hit@1"] == 0.0
