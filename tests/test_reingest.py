"""Re-ingest of unchanged files: nothing is read, parsed or written; any change to the files or the index takes the
normal path (which re-embeds only changed chunks)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from fakes import HashEmbedder
from index.pipeline import ingest_paths
from index.store import MANIFEST, read_manifest

QUERY = "医保异地结算"


@pytest.fixture
def docs(tmp_path: Path, corpus_dir: Path) -> Path:
    out = tmp_path / "docs"
    shutil.copytree(corpus_dir, out)
    return out


def _ingest(docs: Path, ix: Path):
    return ingest_paths([docs], ix, progress=False, embedder=HashEmbedder())


def _mtimes(ix: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in ix.rglob("*") if p.is_file()}


def test_unchanged_files_are_not_read_again(docs, tmp_path):
    ix = tmp_path / "ix"
    first = _ingest(docs, ix)
    assert not first.unchanged and first.embedded > 0 and not first.errors
    before = _mtimes(ix)
    for p in docs.iterdir():  # touched, same bytes: still unchanged
        os.utime(p)
    again = _ingest(docs, ix)
    assert again.unchanged and again.embedded == 0
    assert (again.documents, again.provisions, again.chunks) == (first.documents, first.provisions, first.chunks)
    assert _mtimes(ix) == before  # nothing rewritten
    assert "index unchanged" in again.summary()


def test_a_changed_file_takes_the_normal_path(docs, tmp_path):
    ix = tmp_path / "ix"
    _ingest(docs, ix)
    target = sorted(docs.glob("004_*"))[0]
    target.write_text(target.read_text(encoding="utf-8") + "\n\n十、新增条款。推进医保异地结算便利化。\n", encoding="utf-8")
    report = _ingest(docs, ix)
    assert not report.unchanged and 0 < report.embedded < report.chunks  # only the changed document re-embedded
    assert _ingest(docs, ix).unchanged  # and the next run is fast again


def test_a_damaged_index_file_of_the_same_size_is_rebuilt(docs, tmp_path):
    ix = tmp_path / "ix"
    _ingest(docs, ix)
    chunks = ix / "chunks.jsonl"
    data = bytearray(chunks.read_bytes())
    data[10] ^= 0x01  # same size: the size check alone would not see it
    chunks.write_bytes(bytes(data))
    report = _ingest(docs, ix)
    assert not report.unchanged
    from index.search import Searcher

    assert Searcher.load(ix, HashEmbedder()).search(QUERY, 3)


def test_an_edited_manifest_is_not_taken_as_unchanged(docs, tmp_path):
    ix = tmp_path / "ix"
    _ingest(docs, ix)
    m = json.loads((ix / MANIFEST).read_text(encoding="utf-8"))
    m["build"]["counts"]["documents"] += 1
    (ix / MANIFEST).write_text(json.dumps(m), encoding="utf-8")
    assert not _ingest(docs, ix).unchanged


def test_a_failed_file_is_never_skipped(docs, tmp_path):
    ix = tmp_path / "ix"
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    first = _ingest(docs, ix)
    assert first.errors
    again = _ingest(docs, ix)
    assert not again.unchanged and again.errors  # the failure is reported again, every time
    assert read_manifest(ix).build.inputs_sha256 is None


def test_other_settings_take_the_normal_path(docs, tmp_path):
    ix = tmp_path / "ix"
    _ingest(docs, ix)
    report = ingest_paths([docs], ix, progress=False, embedder=HashEmbedder(), embed_context=False)
    assert not report.unchanged and report.embedded > 0


def test_new_abstention_thresholds_of_the_model_reach_the_index_without_re_embedding(docs, tmp_path):
    """A model whose fast-path thresholds changed (a new release, a fine-tuned model) updates an unchanged index's
    manifest on the next ingest, as a rebuild would record them, and re-embeds nothing."""
    ix = tmp_path / "ix"
    _ingest(docs, ix)
    emb = HashEmbedder()
    emb.abstain_thresholds = {"cos": 0.42, "cover": 0.3}
    report = ingest_paths([docs], ix, progress=False, embedder=emb)
    assert report.embedded == 0
    assert dict(read_manifest(ix).query.abstain) == {"cos": 0.42, "cover": 0.3}
    again = ingest_paths([docs], ix, progress=False, embedder=emb)
    assert again.unchanged and again.embedded == 0
