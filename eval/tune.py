"""`policyqa tune --index DIR --queries Q --qrels R`: train a query adapter on a collection's own labelled questions
and attach it to that index, in one step (issue 14: corpus-specific tuning is an explicit, recorded user step).

The questions are read as `policyqa eval --queries … --qrels …` reads them (JSONL ``id``/``query`` or BEIR
``_id``/``text``; qrels TSV ``query-id corpus-id score``, document ids or provision ids).  In their file order, the
first four fifths fit the adapter and the last fifth choose its settings and number of steps (``eval.adapter.
train_adapter``); an adapter is attached only when it beats the model on that last fifth, otherwise the index is left
as it was and the command says so.  Questions used here are training data: evaluate the tuned index on other ones.
The manifest's adapter header records the two files' sha256, the counts and the early-stopping curve.
"""
from __future__ import annotations

import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np

#: Fewer usable questions than this cannot both fit an adapter and judge it.
MIN_QUESTIONS = 10


class TuneError(ValueError):
    """A reason the index cannot be tuned with these files (the message is for the user)."""


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tune_index(index_dir: Path, queries: Path, qrels: Path, embedder=None, w_dense: float | None = None,
               steps: int = 200, log=print) -> dict:
    """Train and attach; returns the adapter's header.  Raises TuneError when nothing is attached."""
    from eval.adapter import positive_rows, train_adapter
    from eval.questions import load_qrels, load_queries, qrels_level
    from index.adapter import QueryAdapter
    from index.embed import load_embedder
    from index.normalize import to_simplified
    from index.store import attach_adapter, load_index, read_manifest

    t0 = time.perf_counter()
    manifest = read_manifest(index_dir)
    embedder = embedder or load_embedder(manifest.build.model.name)
    ix = load_index(index_dir, embedder)
    if ix.vectors is None:
        raise TuneError("调优需要本机索引（含向量文件）/ tuning needs an embedded index with its vectors, not a Milvus one")
    judged = {q: rel for q, rel in load_qrels(qrels).items() if any(g > 0 for g in rel.values())}
    level = qrels_level(judged)
    rows: dict[str, list[int]] = {}
    for row, chunk in enumerate(ix.chunks):
        rows.setdefault(chunk.provision_id if level == "provision" else chunk.doc_id, []).append(row)
    problems: list[str] = []
    asked = [q for q in load_queries(queries, problems) if q.id in judged]
    found = [(q, gold) for q, gold in zip(asked, positive_rows(asked, judged, rows)) if len(gold)]
    questions, positives = [q for q, _ in found], [gold for _, gold in found]
    unknown = len(asked) - len(found)
    if len(questions) < MIN_QUESTIONS:
        raise TuneError(f"只有 {len(questions)} 个问题在索引中找到了相关条目，至少需要 {MIN_QUESTIONS} 个 / only "
                        f"{len(questions)} questions have a judged item in this index (for {unknown} judged questions "
                        f"none of their items is in it); at least {MIN_QUESTIONS} are needed")
    texts = [to_simplified(q.query) if ix.settings.dense_t2s else q.query for q in questions]
    qv = embedder.encode_queries(texts).astype(np.float32)
    result = train_adapter(qv, np.asarray(ix.vectors, np.float32), positives, steps=steps, log=log)
    if result is None:
        raise TuneError("在留作早停的最后五分之一问题上，没有任何调优设置胜过模型本身：未挂接适配器，索引未改动 / no "
                        "setting beats the model itself on the last fifth of the questions: nothing attached, the "
                        "index is unchanged")
    weight = result.pop("weight")
    meta = {**result, "questions": len(questions), "level": level, "unknown_judged_questions": unknown,
            "skipped_lines": len(problems), "queries_sha256": _sha(queries), "qrels_sha256": _sha(qrels),
            "index_corpus_sha256": manifest.build.corpus_sha256, "trained_by": "policyqa tune --queries --qrels",
            "seconds": round(time.perf_counter() - t0, 1)}
    if w_dense is not None:
        meta["fusion"] = {"w_dense": w_dense, "w_bm25": round(1.0 - w_dense, 6)}
    with tempfile.TemporaryDirectory() as tmp:
        path = QueryAdapter(embedder.name, weight, meta).save(Path(tmp) / "query_adapter.npz")
        attach_adapter(index_dir, path)
    return meta
