"""BEIR-layout benchmarks (corpus.jsonl, queries*.jsonl, qrels/<split>.tsv): load them and build or reuse their index."""
from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from eval.questions import Question, load_qrels, load_queries


class BeirData(NamedTuple):
    """A BEIR split: the corpus file, the judged questions of the split, and their qrels (doc-level)."""

    corpus: Path
    questions: list[Question]
    qrels: dict[str, dict[str, int]]


def _queries_file(root: Path, split: str) -> Path:
    for name in (f"queries-{split}.jsonl", f"queries_{split}.jsonl", f"queries.{split}.jsonl", "queries.jsonl"):
        if (root / name).is_file():
            return root / name
    found = sorted(p.name for p in root.glob("queries*.jsonl"))
    raise FileNotFoundError(f"{root}: no queries file for split {split!r} (found: {found or 'none'})")


#: Share of a split's questions (file order) that tuning and the learned query adapter may see (eval/adapter.py);
#: the rest is the held-out part, reported on its own.
TUNE_SHARE = 0.5


def tune_cut(n: int, share: float = TUNE_SHARE) -> int:
    """How many of ``n`` questions (file order) form the tuning part."""
    return int(n * share + 0.5)


def load_beir(directory: Path | str, split: str = "train", limit: int | None = None,
              halves: bool = False) -> BeirData:
    """Read a BEIR folder; keep the questions judged in ``qrels/<split>.tsv`` (first ``limit`` of them, file order).

    With ``halves`` the questions are labelled ``tune`` (the first ``TUNE_SHARE``) and ``heldout`` instead of ``split``.
    """
    root = Path(directory)
    corpus = root / "corpus.jsonl"
    if not corpus.is_file():
        raise FileNotFoundError(f"{root}: corpus.jsonl is missing (expected BEIR layout: corpus.jsonl, queries*.jsonl, qrels/*.tsv)")
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        raise FileNotFoundError(f"{root}: no qrels for split {split!r}; available splits: {splits or 'none'}")
    qrels = {q: rel for q, rel in load_qrels(qrels_path).items() if any(g > 0 for g in rel.values())}
    questions = [
        Question(q.id, q.query, kind="beir", split=split)
        for q in load_queries(_queries_file(root, split)) if q.id in qrels
    ]
    if limit is not None:
        questions = questions[:limit]
    if halves:
        cut = tune_cut(len(questions))
        questions = [replace(q, split="tune" if i < cut else "heldout") for i, q in enumerate(questions)]
    keep = {q.id for q in questions}
    return BeirData(corpus, questions, {q: rel for q, rel in qrels.items() if q in keep})


def file_hash(path: Path | str, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes (the BEIR index cache key)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def beir_index_dir(corpus: Path, embedder_name: str, root: Path | None = None, tag: str = "") -> Path:
    """Where the index of ``corpus`` for this embedder lives: keyed by the corpus hash, so a changed file rebuilds."""
    from index import config

    base = root or config.data_dir() / "beir"
    model = re.sub(r"[^\w.-]+", "_", embedder_name)
    return base / f"{corpus.parent.name}-{file_hash(corpus)[:16]}-{model}{'-' + tag if tag else ''}"


def ensure_beir_index(corpus: Path, embedder, index_dir: Path | None = None, progress: bool = True, **settings) -> Path:
    """Return an index of the BEIR corpus: reuse ``index_dir`` when its manifest is readable, else build it."""
    from index.ingest import load_documents
    from index.store import IndexSettings, IndexStoreError, build_index, read_manifest

    tag = "-".join(f"{k}={v}" for k, v in sorted(settings.items()))
    index_dir = Path(index_dir) if index_dir else beir_index_dir(Path(corpus), embedder.name, tag=tag)
    if (index_dir / "manifest.json").is_file():
        try:
            read_manifest(index_dir)
            return index_dir
        except IndexStoreError:
            pass  # unreadable manifest or an older schema: rebuild below (its vectors are reused)
    result = load_documents([Path(corpus)], progress=progress)
    if not result.documents:
        raise ValueError(f"{corpus}: no document could be read ({len(result.errors)} errors)")
    build_index(list(result.documents), index_dir, embedder, IndexSettings.of(**settings), progress=progress)
    return index_dir
