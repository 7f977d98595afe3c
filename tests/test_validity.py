"""index/validity.py: the period a document states for itself, and its state on a given day."""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from index.validity import find_validity

TODAY = date(2026, 12, 2)
SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "policies.jsonl"


@pytest.mark.parametrize("title, text, issued, label", [
    ("湖南省对接粤港澳大湾区实施方案（2020—2025年）", "正文", "2020-03-02", "规划期 2020—2025 年（已届满）"),
    ("某规划", "本规划是指导文件。规划期至2025年,展望到2035年。", "2021-03-05", "规划期至 2025 年（已届满）"),
    ("某方案", "实施期限为2024—2027年。", None, "实施期限 2024—2027 年（在期内）"),
    ("某办法", "第十五条 本办法有效期五年，自发布之日起施行。", "2020-12-24", "有效期 2020-12-24 至 2025-12-23（已届满）"),
    ("某政策", "本政策措施自印发之日起施行，有效期至2027年12月31日。", "2024-08-29",
     "有效期 2024-08-29 至 2027-12-31（在期内）"),
    ("某规范", "第二十九条 本规范自2018年5月1日起施行。", "2018-04-11", "自 2018-05-01 起施行（未注明有效期）"),
    ("某规定", "第十五条 本规定自印发之日起执行，试行期一年，期满后评估。", "2021-03-11",
     "试行期 2021-03-11 至 2022-03-10（已届满）"),
    ("某规定", "本规定自2027年1月1日起施行。", "2026-11-01", "自 2027-01-01 起施行（未开始）"),
])
def test_stated_periods_and_their_state(title, text, issued, label):
    found = find_validity(title, text, issued)
    assert found is not None and found.label(TODAY) == label


@pytest.mark.parametrize("text", [
    "临时行驶车号牌有效期不超过安全性自我声明载明的测试时间。",  # a licence's period, not the document's
    "有效期至5355年65月06日。",  # digits scrambled in the source
    "到2020年，全省出省通道增加到20条。",  # a target year is not a period of validity
    "本规范自1913年4月3日起施行。",  # an impossible year for a current policy
])
def test_what_is_not_a_period_of_the_document(text):
    assert find_validity("某文件", text, "2021-07-30") is None


def test_default_corpus(corpus_dir):
    from index.ingest import load_documents

    docs = {d.id[:3]: d for d in load_documents(sorted(corpus_dir.glob("*.txt")), progress=False).documents}
    labels = {k: (v.label(TODAY) if (v := find_validity(d.title, d.text, d.date)) else None) for k, d in docs.items()}
    assert labels == {"001": "规划期 2020—2025 年（已届满）", "002": None, "003": "规划期至 2025 年（已届满）",
                      "004": None}


@pytest.mark.shared
def test_policies_corpus():
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is absent (a fresh clone has no ../shared)")
    rows = [json.loads(line) for line in SHARED.read_text(encoding="utf-8").splitlines() if line.strip()]
    found = {i: find_validity(r.get("title_en") or "", r["content"], r["release_time"][:10]) for i, r in enumerate(rows)}
    stated = {i: v for i, v in found.items() if v is not None}
    assert len(stated) >= 50  # 42 plans with a span in the text, 7 有效期, 9 施行 dates…
    for v in stated.values():
        assert v.evidence and (v.start is None or v.end is None or v.start <= v.end)
        assert v.end is None or 1949 <= v.end.year <= 2100
    kinds = {v.kind for v in stated.values()}
    assert {"规划期", "有效期", "施行"} <= kinds
    labels = [v.label(TODAY) for v in stated.values()]
    assert "有效期 2021-08-29 至 2025-12-31（已届满）" in labels
