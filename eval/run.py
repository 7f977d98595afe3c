"""Run a searcher over labelled questions: metrics per split and kind, latency, abstention, ablations, calibration."""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime, timezone
from pathlib import Path

from eval.metrics import (
    Calibration, abstention, calibrate_min_score, calibration_error, ir_metrics, latency_summary, mean_metrics)
from eval.questions import Question, qrels_level, resolve_gold

#: Runs are retrieved this deep so Recall@100 is measurable; the product shows ``k`` of them.
DEPTH = 100
#: Search modes compared in an ablation run.
MODES = ("bm25", "dense", "hybrid")


@dataclass(frozen=True)
class QuestionRun:
    """What the searcher returned for one question."""

    qid: str
    items: tuple[str, ...]  # ranked ids at the qrels level (provision or doc), deduplicated
    scores: tuple[float, ...]  # score of the first hit for each item
    ms: float
    reason: str | None  # the searcher's reason for returning nothing (or no answer), if any
    answered: bool = True  # at least one hit presented as an answer (``confident``; every hit where no stage judges)
    relevance: tuple[float | None, ...] = ()  # the calibrated relevance of each item's first hit


def _search(searcher, query: str, k: int, mode: str) -> tuple[list, str | None]:
    """Call ``Searcher.query`` (hits + reason) when present, else ``Searcher.search``."""
    if hasattr(searcher, "query"):
        resp = searcher.query(query, k=k, mode=mode)
        return list(resp.hits), getattr(resp, "reason", None)
    return list(searcher.search(query, k=k, mode=mode)), None


def _answered(hits) -> bool:
    return any(getattr(h, "confident", True) for h in hits)


def run_questions(searcher, questions: Sequence[Question], *, mode: str = "hybrid", depth: int = DEPTH,
                  level: str = "provision") -> list[QuestionRun]:
    """Search every question once and keep the ranked ids at ``level`` with their scores and latency.  The embedder's
    cache of recent query vectors is emptied before each search, so each latency includes encoding the question (a
    report's hybrid run follows its dense run over the same questions: without this it timed cached vectors)."""
    attr = "provision_id" if level == "provision" else "doc_id"
    clear = getattr(getattr(searcher, "embedder", None), "clear_query_cache", None)
    out = []
    for q in questions:
        if callable(clear):
            clear()
        t0 = time.perf_counter()
        hits, reason = _search(searcher, q.query, depth, mode)
        ms = (time.perf_counter() - t0) * 1000
        first: dict[str, float] = {}
        rel: dict[str, float | None] = {}
        for h in hits:
            first.setdefault(getattr(h, attr), float(h.score))
            rel.setdefault(getattr(h, attr), getattr(h, "relevance", None))
        out.append(QuestionRun(q.id, tuple(first), tuple(first.values()), ms, reason, _answered(hits),
                               tuple(rel.values())))
    return out


def manifest_stamp(manifest: Mapping | None) -> dict:
    """The parts of an index manifest that identify a run (long per-document lists are left out)."""
    if not manifest:
        return {}
    m = dict(manifest) if isinstance(manifest, Mapping) else manifest.to_json()
    if isinstance(m.get("build"), Mapping):  # the typed manifest: its build section's keys at the top, as reports show
        m = {"schema_version": m.get("schema_version"), **m["build"], "query": m.get("query")}
    return {k: v for k, v in m.items() if len(json.dumps(v, ensure_ascii=False, default=str)) <= 4000}


def _query_settings(searcher) -> dict:
    """The query-time settings in effect (they can differ from the manifest's after ``with_settings``)."""
    settings = getattr(searcher, "settings", None)
    if settings is None or not is_dataclass(settings):
        return {}
    return asdict(settings)


def _summary(qs: Sequence[Question], qrels: Mapping, per_q: Mapping, runs: Mapping[str, QuestionRun]) -> dict:
    """Metrics, per kind, abstention and latency for one subset of questions."""
    answerable = [q.id for q in qs if qrels.get(q.id)]
    unanswerable = [q.id for q in qs if not qrels.get(q.id)]
    n_hits = {q.id: len(runs[q.id].items) if runs[q.id].answered else 0 for q in qs}
    by_kind = {}
    for kind in sorted({q.kind for q in qs}):
        ids = [q.id for q in qs if q.kind == kind]
        ans = [i for i in ids if qrels.get(i)]
        row = {"n": len(ids), **mean_metrics(per_q, ans)}
        if len(ans) < len(ids):
            row.update(abstention(n_hits, ans, [i for i in ids if not qrels.get(i)]))
        by_kind[kind] = row
    return {
        "n": len(qs),
        "answerable": len(answerable),
        "overall": mean_metrics(per_q, answerable),
        "by_kind": by_kind,
        "abstention": abstention(n_hits, answerable, unanswerable),
        "latency_ms": latency_summary([runs[q.id].ms for q in qs]),
        "calibration": _calibration(qs, qrels, runs),
    }


def _calibration(qs, qrels, runs, k: int = 10) -> dict | None:
    """ECE of the relevance of the first ``k`` hits of every question (relevant = gold), when hits carry one."""
    probs, labels = [], []
    for q in qs:
        r, rel = runs[q.id], qrels.get(q.id, {})
        for item, p in list(zip(r.items, r.relevance))[:k]:
            if p is not None:
                probs.append(p)
                labels.append(int(rel.get(item, 0) > 0))
    return calibration_error(probs, labels) if probs else None


def evaluate(searcher, questions: Sequence[Question], k: int = 10, mode: str = "hybrid", *,
             qrels: Mapping[str, Mapping[str, int]] | None = None, depth: int = DEPTH, name: str | None = None) -> dict:
    """Evaluate ``searcher`` on ``questions``: Recall@5/10/20/100, MRR@10, nDCG@10 per split and kind, latency, abstention.

    Without ``qrels`` the gold anchors are resolved against ``searcher.documents`` (provision level);
    with qrels, hits are matched on provision ids when the judged ids contain '#', else on doc ids.
    """
    questions = list(questions)
    unresolved: tuple = ()
    if qrels is None:
        res = resolve_gold(questions, searcher.documents)
        qrels, unresolved = res.qrels, res.unresolved
    level = qrels_level(qrels)
    runs = {r.qid: r for r in run_questions(searcher, questions, mode=mode, depth=max(depth, k), level=level)}
    per_q = ir_metrics({q: r.items for q, r in runs.items()}, qrels)
    splits = {}
    for split in sorted({q.split for q in questions}):
        splits[split] = _summary([q for q in questions if q.split == split], qrels, per_q, runs)
    if len(splits) > 1:
        splits["all"] = _summary(questions, qrels, per_q, runs)
    per_question = []
    for q in questions:
        r, rel = runs[q.id], qrels.get(q.id, {})
        ranks = [i + 1 for i, item in enumerate(r.items) if rel.get(item, 0) > 0]
        per_question.append({
            "id": q.id, "kind": q.kind, "split": q.split, "query": q.query,
            "gold": sorted(d for d, g in rel.items() if g > 0), "top": list(r.items[:k]),
            "top_scores": [round(s, 6) for s in r.scores[:k]], "first_relevant_rank": ranks[0] if ranks else None,
            "n_hits": len(r.items), "reason": r.reason, "ms": round(r.ms, 2), **per_q.get(q.id, {}),
        })
    ranked = {q.id: list(zip(runs[q.id].items, runs[q.id].scores)) for q in questions}
    return {
        "name": name or mode, "mode": mode, "k": k, "depth": max(depth, k), "level": level,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "index": manifest_stamp(getattr(searcher, "manifest", None)),
        "min_score": getattr(searcher, "min_score", None),
        "search_settings": _query_settings(searcher),
        "unresolved": [list(u) for u in unresolved],
        "latency_ms": latency_summary([r.ms for r in runs.values()]),
        "splits": splits, "per_question": per_question,
        # for the TREC files written beside the report (eval.report), not for the JSON
        "_ranked": ranked, "_qrels": {q: dict(r) for q, r in qrels.items()},
    }


def run_ablations(searcher, questions: Sequence[Question], k: int = 10, *, modes: Iterable[str] = MODES,
                  no_context_searcher=None, qrels: Mapping | None = None, depth: int = DEPTH) -> dict:
    """Every mode on ``searcher``; dense and hybrid again on an index built with ``embed_context=False`` if given."""
    runs = {m: evaluate(searcher, questions, k, m, qrels=qrels, depth=depth, name=m) for m in modes}
    if no_context_searcher is not None:
        for m in (m for m in modes if m != "bm25"):  # BM25 does not read the embedded context
            name = f"{m}-no-context"
            runs[name] = evaluate(no_context_searcher, questions, k, m, qrels=qrels, depth=depth, name=name)
    for name, changes, variant_modes in _default_variants(searcher, modes, questions):
        other = searcher.with_settings(**changes)
        for m in variant_modes:
            runs[f"{m}-{name}"] = evaluate(other, questions, k, m, qrels=qrels, depth=depth, name=f"{m}-{name}")
    first = next(iter(runs.values()))
    return {"name": "ablations", "created": first["created"], "index": first["index"], "runs": runs}


def _default_variants(searcher, modes: Iterable[str], questions: Sequence[Question] = ()
                      ) -> list[tuple[str, dict, list[str]]]:
    """The shipped defaults switched off one at a time: the learned query adapter, abstention on weak evidence,
    the dictionary translation of English queries (off; and with/without its words in the dense query), the
    everyday words' official wording in the dense query."""
    settings = getattr(searcher, "settings", None)
    if settings is None or not hasattr(searcher, "with_settings"):
        return []
    out = []
    if getattr(settings, "relevance", False) and getattr(searcher, "relevance_stage", lambda: None)() is not None:
        # today's fast path: the hybrid order and the heuristic abstention, without the relevance stage
        out.append(("no-relevance", {"relevance": False}, [m for m in modes if m == "hybrid"]))
    if getattr(settings, "query_adapter", False) and _has_adapter(searcher):
        out.append(("no-adapter", {"query_adapter": False}, [m for m in modes if m != "bm25"]))
    staged = getattr(searcher, "relevance_stage", lambda: None)() is not None
    if getattr(settings, "abstain", False) and getattr(searcher, "abstain_thresholds", lambda: None)() and not staged:
        out.append(("no-abstain", {"abstain": False}, [m for m in modes if m == "hybrid"]))
    if getattr(settings, "translate", False) and _has_english(searcher, questions):
        out.append(("no-translate", {"translate": False}, list(modes)))
        # the other setting of translate_dense, measured beside the shipped one (dev showed no gain from it)
        other = not getattr(settings, "translate_dense", False)
        out.append(("translate-dense" if other else "translate-bm25-only", {"translate_dense": other},
                    [m for m in modes if m != "bm25"]))
    if getattr(settings, "everyday_dense", False) and getattr(settings, "translate", False):
        # the everyday words' official wording in the dense query (session 15), off: the question as written
        out.append(("no-everyday-dense", {"everyday_dense": False}, [m for m in modes if m != "bm25"]))
    return out


def _has_english(searcher, questions: Sequence[Question]) -> bool:
    """True when some question would be translated (index/translate.py): else the variant measures nothing."""
    return any(q.query.isascii() and any(ch.isalpha() for ch in q.query) for q in questions)


def _has_adapter(searcher) -> bool:
    manifest = getattr(searcher, "manifest", None)
    return bool(getattr(getattr(manifest, "query", None), "adapter", None))


def build_variant_index(documents, index_dir: Path, embedder, progress: bool = False, **settings) -> Path:
    """Build (or refresh, reusing unchanged vectors) an index of ``documents`` with non-default ``IndexSettings``."""
    from index.store import IndexSettings, build_index

    docs = list(documents.values()) if isinstance(documents, Mapping) else list(documents)
    build_index(docs, Path(index_dir), embedder, IndexSettings.of(**settings), progress=progress)
    return Path(index_dir)


def calibrate(searcher, questions: Sequence[Question], *, mode: str = "hybrid", split: str | None = "dev",
              at: int = 5, depth: int = 20) -> Calibration:
    """Choose ``searcher.min_score`` on one split (dev): maximise answerable Recall@at minus the false-answer rate.

    The searcher is run with its threshold switched off; the chosen value is returned, not applied.
    """
    qs = [q for q in questions if split is None or q.split == split]
    qrels = resolve_gold(qs, searcher.documents).qrels
    saved = getattr(searcher, "min_score", None)
    try:
        searcher.min_score = None
        runs = run_questions(searcher, qs, mode=mode, depth=depth, level="provision")
    finally:
        searcher.min_score = saved
    ranked = {r.qid: [(s, qrels.get(r.qid, {}).get(i, 0) > 0) for i, s in zip(r.items, r.scores)] for r in runs}
    return calibrate_min_score(ranked, {q.id: len(qrels.get(q.id, {})) for q in qs}, at=at)


def tune(searcher, questions: Sequence[Question], grid: Iterable[Mapping], *, split: str = "dev",
         mode: str = "hybrid", depth: int = 20) -> list[dict]:
    """Evaluate query-time setting variants (``Searcher.with_settings``) on one split; best MRR@10 + Recall@5 first."""
    qs = [q for q in questions if q.split == split]
    rows = []
    for changes in grid:
        r = evaluate(searcher.with_settings(**changes), qs, mode=mode, depth=depth)
        rows.append({"settings": dict(changes), **r["splits"][split]["overall"]})
    rows.sort(key=lambda x: -(x.get("mrr@10", 0.0) + x.get("recall@5", 0.0)))
    return rows


__all__ = ["DEPTH", "MODES", "QuestionRun", "build_variant_index", "calibrate", "evaluate",
           "manifest_stamp", "run_ablations", "run_questions", "tune"]
