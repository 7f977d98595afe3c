"""Issue #15, ingest and index store: what a government intranet throws at an ingest (file names that are not UTF-8,
read-only or full disks, altered index files, killed builds, zip bombs, symlinks out of the folder, ``--index`` named
wrongly).  The bad-input table (tests/test_bad_input.py) and the corruption table (tests/test_crash.py) hold the
one-row cases; these are the ones that need more than one step."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes import HashEmbedder
from index.pipeline import ingest_paths
from index.store import (
    DOCUMENTS, VECTORS, IndexAlteredError, build_index, load_index, read_documents, read_manifest)
from index.store.errors import NotAnIndexError
from index_fixtures import corpus

ROOT = Path(__file__).resolve().parent.parent
TEXT = "关于推进医保异地结算的通知\n\n一、总体要求\n\n（一）推进医保异地就医直接结算，方便参保群众。\n"


def _ingest(paths, ix: Path):
    return ingest_paths([Path(p) for p in paths], ix, progress=False, embedder=HashEmbedder())


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- 1. file names that are not UTF-8
def test_file_names_that_are_not_utf8_are_ingested_under_readable_names(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    gbk = os.fsdecode("医保办法.txt".encode("gbk"))  # GBK bytes on disk: surrogates in Python's str
    (docs / gbk).write_text(TEXT, encoding="utf-8")
    (docs / os.fsdecode(b"\xff\xfe\x80.txt")).write_text(TEXT.replace("通知", "决定"), encoding="utf-8")
    (docs / "普通.txt").write_text(TEXT.replace("医保", "交通"), encoding="utf-8")
    ix = tmp_path / "ix"
    report = _ingest([docs], ix)
    assert not report.errors and report.documents == 3
    documents = read_documents(ix)
    # GB18030 bytes are shown as the name they spell; bytes that are not GB18030 either as \xNN escapes
    assert set(documents) == {"医保办法", "\\xff\\xfe\\x80", "普通"}
    assert [s.path for s in documents["医保办法"].sources] == ["医保办法.txt"]
    for name in ("documents.jsonl", "chunks.jsonl", "manifest.json"):
        (ix / name).read_bytes().decode("utf-8")  # strict: the index's JSON stays valid UTF-8
    again = _ingest([docs], ix)  # the inputs' fingerprint hashes the names as bytes
    assert again.unchanged


# ---------------------------------------------------------------- 2. JSONL read line by line (eval side)
def test_a_beir_folder_with_bad_query_lines_keeps_the_good_ones(tmp_path, capsys):
    from eval.beir import load_beir

    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": "医保异地结算。"}\n', encoding="utf-8")
    (tmp_path / "queries.jsonl").write_bytes(b'{"_id": "q1", "text": "yibao"}\n' + b"[" * 100_000 + b"]" * 100_000
                                             + b'\n{"_id": "q3", "text": "a\x00"}\n{"_id": "q4", "text": "jiesuan"}\n')
    (tmp_path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq4\td1\t1\n")
    data = load_beir(tmp_path, "test")
    assert [q.id for q in data.questions] == ["q1", "q4"]
    err = capsys.readouterr().err
    assert "queries.jsonl:2" in err and "nested too deeply" in err and "queries.jsonl:3" in err and "NUL" in err


# ---------------------------------------------------------------- 3. read-only mount, full disk
def _fail_writes(monkeypatch, code: int, where: str) -> None:
    """Make the file system answer ``code`` where a build writes: the lock file, or the index files."""
    import numpy as np

    error = OSError(code, os.strerror(code))
    if where == "lock":
        import filelock

        monkeypatch.setattr(filelock.FileLock, "acquire", lambda *a, **k: (_ for _ in ()).throw(error))
    else:
        monkeypatch.setattr(np, "save", lambda *a, **k: (_ for _ in ()).throw(error))


@pytest.mark.parametrize("code, where, says", [
    (errno.EROFS, "lock", ("只读文件系统", "read-only", "Errno 30", "writable folder with --index")),
    (errno.ENOSPC, "files", ("磁盘已满", "no space left", "Errno 28", "free some space")),
    (errno.EACCES, "lock", ("没有写入权限", "permission denied", "--index")),
], ids=["read-only-mount", "disk-full", "no-permission"])
def test_an_index_that_cannot_be_written_is_one_line_with_the_fix(tmp_path, monkeypatch, run_cli, code, where,
                                                                  says):
    ix = tmp_path / "ix"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(TEXT, encoding="utf-8")
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    before = _snapshot(ix)
    _fail_writes(monkeypatch, code, where)
    status, out, err = run_cli("ingest", docs, "--index", ix, "--no-progress")
    assert status == 2 and err.startswith("错误 / error: ") and err.count("\n") == 1, err
    for word in (*says, str(ix), "the previous index is unchanged"):
        assert word in err, (word, err)
    assert _snapshot(ix) == before and not list(tmp_path.glob(".ix.*"))


def test_a_real_read_only_folder_is_refused_in_one_line(tmp_path, run_cli):
    """Where chmod binds (not root), the real thing; as root the monkeypatched test above stands for it."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("root writes to a 0555 folder; see the monkeypatched EROFS/EACCES cases")
        status, _, err = run_cli("ingest", ROOT / "corpus", "--index", ro / "ix", "--no-progress")
        assert status == 2 and "cannot write the index" in err and err.count("\n") == 1, err
    finally:
        ro.chmod(0o755)


# ---------------------------------------------------------------- 4. integrity: sha256 on load and before reuse
def test_a_same_length_edit_is_refused_and_a_reingest_restores_the_text(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(TEXT, encoding="utf-8")
    ix = tmp_path / "ix"
    _ingest([docs], ix)
    path = ix / DOCUMENTS
    path.write_text(path.read_text(encoding="utf-8").replace("医保", "社保"), encoding="utf-8")  # same size
    with pytest.raises(IndexAlteredError, match="documents.jsonl does not match its recorded sha256"):
        load_index(ix, HashEmbedder())
    with pytest.raises(IndexAlteredError):
        read_documents(ix)  # what `policyqa docs` / `show` print
    report = _ingest([docs], ix)  # the same files: not "unchanged", and the altered text is not kept
    assert not report.unchanged and report.embedded == 0  # the intact vectors are still reused
    assert "医保" in read_documents(ix)["a"].text and "社保" not in read_documents(ix)["a"].text
    load_index(ix, HashEmbedder())


def test_tune_never_seals_an_altered_index_again(tmp_path, run_cli):
    """`policyqa tune` rewrites the manifest with every file's digest: on an altered index it refuses instead."""
    ix = tmp_path / "ix"
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    path = ix / DOCUMENTS
    path.write_text(path.read_text(encoding="utf-8").replace("医保", "社保", 1), encoding="utf-8")
    before = _snapshot(ix)
    code, _, err = run_cli("tune", "--remove", "--index", ix)
    assert code == 2 and "documents.jsonl does not match its recorded sha256" in err, err
    assert _snapshot(ix) == before


def test_flipped_vector_bytes_are_never_reused(tmp_path):
    import numpy as np

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(TEXT, encoding="utf-8")
    ix = tmp_path / "ix"
    first = _ingest([docs], ix)
    good = np.load(ix / VECTORS).copy()
    data = bytearray((ix / VECTORS).read_bytes())
    data[-8:] = bytes(8)  # a zeroed vector component: same size, parses fine
    (ix / VECTORS).write_bytes(bytes(data))
    with pytest.raises(IndexAlteredError, match="vectors.npy"):
        load_index(ix, HashEmbedder())
    again = _ingest([docs], ix)
    assert again.embedded == first.chunks  # every vector encoded again, none taken from the altered file
    assert np.array_equal(np.load(ix / VECTORS), good)


# ---------------------------------------------------------------- 5. build folders left by kill -9
def test_a_killed_builds_folder_is_cleared_on_the_unchanged_path(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(TEXT, encoding="utf-8")
    ix = tmp_path / "ix"
    _ingest([docs], ix)
    stale = tmp_path / ".ix.build-deadbeef"
    (stale / "bm25").mkdir(parents=True)
    (stale / "vectors.npy").write_bytes(b"x" * 1000)
    assert _ingest([docs], ix).unchanged
    assert not stale.exists()


def test_a_refused_ingest_clears_them_too(tmp_path):
    ix = tmp_path / "ix"
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    (tmp_path / ".ix.build-0badf00d").mkdir()
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="no document could be read"):
        _ingest([tmp_path / "empty.txt"], ix)
    assert not (tmp_path / ".ix.build-0badf00d").exists()


_HOLDER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from index.store import index_lock
from index.store.atomic import build_folder
ix = Path({ix!r})
with index_lock(ix):
    tmp = build_folder(ix)
    (tmp / "vectors.npy").write_bytes(b"being written")
    print(tmp, flush=True)
    time.sleep(30)
"""


def test_a_live_builds_folder_is_never_removed(tmp_path):
    """Another process holds the lock and writes its build folder: cleaning (any path, any process) leaves it."""
    from index.store.atomic import remove_stale_builds

    ix = tmp_path / "ix"
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER.format(root=str(ROOT), ix=str(ix))],
                            stdout=subprocess.PIPE, text=True)
    try:
        live = Path(proc.stdout.readline().strip())
        assert live.is_dir()
        remove_stale_builds(ix)
        assert (live / "vectors.npy").read_bytes() == b"being written"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    remove_stale_builds(ix)  # the holder died (kill -9): now it is stale
    assert not live.exists()


def test_a_kill_between_the_two_renames_puts_the_old_index_back(tmp_path):
    """Without renameat2 the swap is two renames; a kill between them leaves only ``.ix.old-*``: it is restored."""
    from index.store.atomic import remove_stale_builds

    ix = tmp_path / "ix"
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    before = _snapshot(ix)
    ix.rename(tmp_path / ".ix.old-12345678")
    remove_stale_builds(ix)
    assert _snapshot(ix) == before and not list(tmp_path.glob(".ix.old-*"))


# ---------------------------------------------------------------- 6. zip bombs
def test_a_docx_bomb_is_refused_before_it_is_inflated(tmp_path):
    import resource

    from test_bad_input import MB, _docx

    bomb = tmp_path / "bomb.docx"
    bomb.write_bytes(_docx(200 * MB))  # ~200 KB on disk
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="MB of XML .limit 20 MB"):
        _ingest([bomb], tmp_path / "ix")
    assert time.perf_counter() - t0 < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 100_000  # KB: never inflated


# ---------------------------------------------------------------- 8. --index that is not an index
def test_an_index_path_that_is_a_file_or_someones_folder_is_left_alone(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "plan.docx").write_bytes(b"x")
    for target in (notes, folder):
        with pytest.raises(NotAnIndexError, match="new or empty folder"):
            build_index(corpus(), target, HashEmbedder(), progress=False)
        with pytest.raises(NotAnIndexError):
            _ingest([ROOT / "corpus"], target)
    assert notes.read_text() == "my notes" and (folder / "plan.docx").read_bytes() == b"x"
    assert not list(tmp_path.glob(".*"))
    empty = tmp_path / "empty"
    empty.mkdir()
    build_index(corpus(), empty, HashEmbedder(), progress=False)  # an empty folder is fine


def test_an_index_damaged_to_no_manifest_is_still_ours_to_rebuild(tmp_path):
    ix = tmp_path / "ix"
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    (ix / "manifest.json").unlink()
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    assert read_manifest(ix).build.counts["documents"] == 5


def test_an_index_inside_the_corpus_folder_is_never_read(tmp_path, run_cli):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "corpus", docs)
    ix = docs / "ix"
    code, out, err = run_cli("ingest", docs, "--index", ix, "--no-progress")
    assert code == 0, err
    first = read_manifest(ix).build.counts["documents"]
    code, out, err = run_cli("ingest", docs, "--index", ix, "--no-progress")  # its stopwords.txt, lock, build dirs
    assert code == 0 and "index unchanged" in out and not err, (out, err)
    assert read_manifest(ix).build.counts["documents"] == first
    assert not any("ix/" in s.path for d in read_documents(ix).values() for s in d.sources)
    code, out, err = run_cli("ingest", ix / "bm25" / "stopwords.txt", "--index", tmp_path / "other", "--no-progress")
    assert code == 2 and "index folder" in err, err  # named explicitly: still refused


def test_documents_without_one_searchable_word_are_refused_in_one_line(tmp_path, run_cli):
    """Found while naming an index's own bm25/stopwords.txt as input: BM25 over an empty vocabulary crashed."""
    (tmp_path / "a.txt").write_text("的\n了\n是\n", encoding="utf-8")
    code, _, err = run_cli("ingest", tmp_path / "a.txt", "--index", tmp_path / "ix", "--no-progress")
    assert code == 2 and "no searchable words" in err and err.count("\n") == 1, err
    assert not (tmp_path / "ix").exists()


def test_a_manifest_nested_too_deeply_is_one_line(tmp_path, run_cli):
    ix = tmp_path / "ix"
    build_index(corpus(), ix, HashEmbedder(), progress=False)
    (ix / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = run_cli("search", "医保", "--index", ix)
    assert code == 2 and "nested too deeply" in err and "policyqa ingest" in err, err
