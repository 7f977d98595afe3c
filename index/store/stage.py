"""The relevance stage that ships with a model (``embedder.relevance_dir``): copied into an index when it is built,
and replaced in place (no rebuild) when the model's stage changes."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.store.layout import CHUNKS, RELEVANCE
from index.store.manifest import IndexManifest, altered_file, file_digests, read_manifest_json

if TYPE_CHECKING:
    from index.embed import Embedder


def model_abstain(embedder: Embedder) -> dict | None:
    """The fast path's abstention thresholds that come with this model, as an index records them (None: none)."""
    abstain = getattr(embedder, "abstain_thresholds", None)
    return dict(abstain) if abstain else None


def shipped_stage_dir(embedder: Embedder) -> Path | None:
    stage_dir = getattr(embedder, "relevance_dir", None)
    return Path(stage_dir) if stage_dir is not None and (Path(stage_dir) / "stage.json").is_file() else None


def _digest_of(folder: Path, names) -> str:
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return h.hexdigest()


def shipped_stage_digest(embedder: Embedder) -> str | None:
    """sha256 of the relevance stage that comes with this model (None: none, or trained for another model)."""
    from index.relevance import RelevanceStage

    folder = shipped_stage_dir(embedder)
    if folder is None:
        return None
    stage = RelevanceStage.load(folder)
    return _digest_of(folder, stage.files()) if stage.trained_for in (None, embedder.name) else None


def stage_digest(index_dir: Path, manifest: IndexManifest) -> str | None:
    """sha256 of the relevance stage the index holds (its shipped files: not the sentence vectors the build added)."""
    if not manifest.query.relevance:
        return None
    from index.relevance import SENTENCE_STARTS, SENTENCE_VECTORS

    folder = Path(index_dir) / manifest.query.relevance
    names = [n.split("/", 1)[1] for n in manifest.files if n.startswith(manifest.query.relevance + "/")]
    names = [n for n in names if n not in (SENTENCE_VECTORS, SENTENCE_STARTS)]  # the index's own, not shipped
    try:
        return _digest_of(folder, names)
    except OSError:
        return "missing"


def replace_stage(index_dir: Path, manifest: IndexManifest, embedder: Embedder) -> IndexManifest:
    """Put the model's current relevance stage (or none) into the index and record it (called under the lock)."""
    old = _previous_sentences(Path(index_dir), embedder)  # read before the old stage folder goes
    shutil.rmtree(Path(index_dir) / RELEVANCE, ignore_errors=True)
    files = {k: v for k, v in manifest.files.items() if not k.startswith(RELEVANCE + "/")}
    name = copy_shipped_stage(embedder, Path(index_dir), previous=old)
    if name is not None:
        files.update({p.relative_to(index_dir).as_posix(): p.stat().st_size
                      for p in sorted((Path(index_dir) / name).iterdir())})
    new = manifest.with_query(relevance=name)
    return IndexManifest(new.build, new.query, files, file_digests(index_dir, files))


def copy_shipped_stage(embedder: Embedder, folder: Path, previous: dict | Path | None = None,
                       progress: bool = False) -> str | None:
    """Copy the model's relevance stage into the index (being built) in ``folder``; its folder name, or None.

    A stage with sentence features also gets the sentence vectors of the chunks in ``folder/chunks.jsonl``
    (``index.sentences``): those of chunks that ``previous`` (the index being replaced, or its
    ``_previous_sentences``) already held are taken from it, the others encoded."""
    from index.relevance import SENTENCE_STARTS, SENTENCE_VECTORS, RelevanceStage

    source = shipped_stage_dir(embedder)
    if source is None or shipped_stage_digest(embedder) is None:  # none, or trained for another model
        return None
    (folder / RELEVANCE).mkdir(exist_ok=True)
    stage = RelevanceStage.load(source)
    for name in stage.files():
        shutil.copy2(source / name, folder / RELEVANCE / name)
    if stage.needs_sentences:
        old = previous if isinstance(previous, dict) else _previous_sentences(previous, embedder)
        sv = _sentence_vectors(embedder, folder, old, progress)
        np.save(folder / RELEVANCE / SENTENCE_VECTORS, sv.vectors, allow_pickle=False)
        np.save(folder / RELEVANCE / SENTENCE_STARTS, sv.starts, allow_pickle=False)
    return RELEVANCE


def _sentence_vectors(embedder: Embedder, folder: Path, old: dict, progress: bool):
    """The sentence vectors of the chunks in ``folder``, reusing ``old`` (chunk key -> its sentences' vectors)."""
    from index.sentences import SentenceVectors, sentences_of

    with open(folder / CHUNKS, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    # an old chunk's vectors only while they are as many as its sentences now (a changed splitter re-encodes)
    todo = [i for i, r in enumerate(rows)
            if r["key"] not in old or len(old[r["key"]]) != len(sentences_of(r["text"]))]
    new = SentenceVectors.encode([rows[i]["text"] for i in todo],
                                 lambda xs: embedder.encode_passages(xs, progress=progress))
    fresh = {i: new.vectors[new.starts[j]:new.starts[j + 1]] for j, i in enumerate(todo)}
    parts = [fresh[i] if i in fresh else old[r["key"]] for i, r in enumerate(rows)]
    starts = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    dim = embedder.dim
    vectors = np.concatenate(parts).astype(np.float16) if parts else np.zeros((0, dim), np.float16)
    return SentenceVectors(vectors, starts)


def _previous_sentences(index_dir: Path | None, embedder: Embedder) -> dict:
    """chunk key -> sentence vectors, from the index at ``index_dir`` when it was built by the same model, its stage
    holds them, and they and its chunks are the bytes its manifest records; else empty (nothing altered, nothing of
    another model is ever carried over)."""
    from index.relevance import SENTENCE_STARTS, SENTENCE_VECTORS

    if index_dir is None:
        return {}
    try:
        raw = read_manifest_json(Path(index_dir))
        model = (raw.get("build") or raw).get("model") or {}
        if model.get("name") != embedder.name or model.get("dim") != embedder.dim:
            return {}
        names = [CHUNKS, f"{RELEVANCE}/{SENTENCE_VECTORS}", f"{RELEVANCE}/{SENTENCE_STARTS}"]
        files, digests = raw.get("files") or {}, raw.get("file_sha256") or {}
        if any(n not in files for n in names) or altered_file(
                Path(index_dir), {n: files[n] for n in names}, {n: digests[n] for n in names if n in digests}):
            return {}
        vectors = np.load(Path(index_dir) / names[1], allow_pickle=False)
        starts = np.load(Path(index_dir) / names[2], allow_pickle=False)
        with open(Path(index_dir) / CHUNKS, encoding="utf-8") as fh:
            keys = [json.loads(line)["key"] for line in fh]
        if len(starts) != len(keys) + 1 or starts[-1] != len(vectors):
            return {}
        return {k: vectors[starts[i]:starts[i + 1]] for i, k in enumerate(keys)}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
