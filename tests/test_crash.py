"""Crashes, locks and corruption, through the real `policyqa` entry point in subprocesses (tests/fake_cli.py).

- ``kill -9`` of an ingest at seeded random points: the index on disk is always exactly the previous one (or, if
  the kill came after the final rename, exactly the new one), it loads and answers as before, and the next ingest
  completes normally.
- Two ingests at once: the second waits for the lock; both finish; the index is whole.
- A truncated, missing or altered index file, or a manifest of another model: every command refuses with a message
  naming the fix, and ``policyqa serve`` exits with that message instead of crash-looping.
"""
from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes import HashEmbedder
from index.search import Searcher
from index.store import MANIFEST, read_manifest

ROOT = Path(__file__).resolve().parent.parent
FAKE_CLI = [sys.executable, str(ROOT / "tests" / "fake_cli.py")]
QUERIES = ["哪些条款涉及医保异地结算", "高速铁路建设", "实施方案 总体要求", "萍乡"]
CHARS = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行"
         "学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前")
KILL_RUNS = 5


def policyqa(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*FAKE_CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


def _results(index_dir: Path) -> list:
    s = Searcher.load(index_dir, HashEmbedder())
    return [[(h.provision_id, round(h.score, 6)) for h in s.search(q, 10)] for q in QUERIES]


def _big_corpus(folder: Path, files: int = 50, seed: int = 0) -> Path:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        items = [f"第{n + 1}条 " + "".join(rng.choice(CHARS) for _ in range(120)) + "。" for n in range(12)]
        (folder / f"doc{i:03d}.txt").write_text(f"关于第{i}号事项的实施方案\n\n" + "\n\n".join(items), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory, corpus_dir):
    """An index of the default corpus (the 'previous' index), its answers, and a bigger corpus to ingest over it."""
    base = tmp_path_factory.mktemp("crash")
    ix = base / "ix"
    r = policyqa("ingest", str(corpus_dir), "--index", str(ix), "--no-progress")
    assert r.returncode == 0, r.stderr
    big = _big_corpus(base / "big")
    return ix, _results(ix), read_manifest(ix).build.corpus_sha256, big


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _leftovers(ix: Path) -> list[str]:
    return sorted(p.name for p in ix.parent.glob(f".{ix.name}.*"))


@pytest.mark.slow
# ---------------------------------------------------------------- kill -9
def test_kill_minus_9_at_random_points_never_damages_the_index(built, tmp_path):
    ix0, answers, old_hash, big = built
    ix = _copy(ix0, tmp_path / "ix")
    t0 = time.perf_counter()
    ref = policyqa("ingest", str(big), "--index", str(tmp_path / "ref"), "--no-progress")
    full = time.perf_counter() - t0
    assert ref.returncode == 0, ref.stderr
    new_hash = read_manifest(tmp_path / "ref").build.corpus_sha256
    rng = random.Random(20261124)
    outcomes = []
    for run in range(KILL_RUNS):
        delay = rng.uniform(0.4, 0.95) * full  # past start-up (imports)
        proc = subprocess.Popen([*FAKE_CLI, "ingest", str(big), "--index", str(ix), "--no-progress"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        found = read_manifest(ix).build.corpus_sha256
        assert found in (old_hash, new_hash), f"run {run}: the index on disk is neither the old nor the new one"
        if found == new_hash:  # the kill landed after the final rename: the new index is complete
            outcomes.append("new")
            ix = _copy(ix0, tmp_path / f"ix{run}")  # start the next run from the previous index again
            continue
        outcomes.append(f"old@{delay:.2f}s")
        assert _results(ix) == answers, f"run {run}: answers changed after kill -9 at {delay:.2f}s"
    r = policyqa("search", QUERIES[0], "--json", "--index", str(ix))  # the CLI, too, reads the survivor
    assert r.returncode == 0 and json.loads(r.stdout)["hits"], r.stderr
    print(f"kill -9 outcomes (full ingest {full:.2f}s):", outcomes)
    assert outcomes.count("new") < KILL_RUNS, "every kill came too late to test anything"
    r = policyqa("ingest", str(big), "--index", str(ix), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert read_manifest(ix).build.corpus_sha256 == new_hash
    assert _results(ix) == _results(tmp_path / "ref")
    assert _leftovers(ix) == [], "the next ingest clears what the killed ones left"


@pytest.mark.slow
def test_a_kill_just_after_the_build_folder_appears_is_cleaned_by_an_unchanged_ingest(built, tmp_path, corpus_dir):
    """kill -9 a few ms after ``.ix.build-*`` appears; the next ingest takes the "unchanged" path (the same files
    as the index on disk) and still removes the leftover."""
    ix0, answers, old_hash, big = built
    ix = _copy(ix0, tmp_path / "ix")
    assert "index unchanged" in policyqa("ingest", str(corpus_dir), "--index", str(ix), "--no-progress").stdout
    proc = subprocess.Popen([*FAKE_CLI, "ingest", str(big), "--index", str(ix), "--no-progress"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not _leftovers(ix) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    if not _leftovers(ix):
        pytest.skip("the build finished before the kill")  # not seen here: the build folder lives ~0.3 s
    assert read_manifest(ix).build.corpus_sha256 == old_hash
    r = policyqa("ingest", str(corpus_dir), "--index", str(ix), "--no-progress")
    assert r.returncode == 0 and "index unchanged" in r.stdout, r.stdout + r.stderr
    assert _leftovers(ix) == [] and _results(ix) == answers


def test_the_new_index_replaces_the_old_in_one_atomic_step(tmp_path, monkeypatch):
    import index.store as store
    import index.store.atomic as atomic
    from index_fixtures import corpus

    a, b = tmp_path / "a", tmp_path / "b"
    for d, text in ((a, "A"), (b, "B")):
        d.mkdir()
        (d / "f").write_text(text)
    assert atomic.exchange_dirs(a, b) and (a / "f").read_text() == "B" and (b / "f").read_text() == "A"
    ix = tmp_path / "ix"
    store.build_index(corpus()[:2], ix, HashEmbedder(), progress=False)
    store.build_index(corpus(), ix, HashEmbedder(), progress=False)  # swapped in by the exchange
    assert len(Searcher.load(ix, HashEmbedder()).documents) == 5 and _leftovers(ix) == []
    monkeypatch.setattr(atomic, "exchange_dirs", lambda x, y: False)  # a system without renameat2: two renames
    store.build_index(corpus()[:3], ix, HashEmbedder(), progress=False)
    assert len(Searcher.load(ix, HashEmbedder()).documents) == 3 and _leftovers(ix) == []


@pytest.mark.slow
# ---------------------------------------------------------------- lock
def test_two_ingests_at_once_one_waits_for_the_other(built, tmp_path, corpus_dir):
    ix0, answers, old_hash, big = built
    ix = _copy(ix0, tmp_path / "ix")
    first = subprocess.Popen([*FAKE_CLI, "ingest", str(big), "--index", str(ix), "--no-progress"], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # past start-up: the first one is reading files or holds the lock
    second = policyqa("ingest", str(corpus_dir), "--index", str(ix), "--no-progress")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and second.returncode == 0, (err, second.stderr)
    # whichever took the lock last decides the content: the index is one of the two corpora, whole, and loads
    assert read_manifest(ix).build.counts["documents"] in (4, 50)
    assert Searcher.load(ix, HashEmbedder()).search(QUERIES[0], 3)
    assert _leftovers(ix) == []


@pytest.mark.slow
def test_ingest_says_it_waits_for_a_held_lock_then_runs(built, tmp_path, corpus_dir):
    from index.store import index_lock

    ix = _copy(built[0], tmp_path / "ix")
    log = tmp_path / "stderr.txt"
    with index_lock(ix), open(log, "w") as err_fh:  # another build is running
        proc = subprocess.Popen([*FAKE_CLI, "ingest", str(corpus_dir), "--index", str(ix), "--no-progress"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=err_fh)
        deadline = time.monotonic() + 60
        while "waiting: another build of" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        time.sleep(1)
        assert proc.poll() is None, "the second build must wait for the lock"
    assert proc.wait(timeout=60) == 0, log.read_text()
    assert "waiting: another build of" in log.read_text() and "Traceback" not in log.read_text()
    assert _results(ix) == built[1]


def test_a_held_lock_is_refused_with_a_message_after_the_timeout(built, tmp_path):
    from index.store import IndexLockedError, build_index, index_lock
    from index_fixtures import corpus

    ix = _copy(built[0], tmp_path / "ix")
    with index_lock(ix):  # as if another process were building
        with pytest.raises(IndexLockedError, match="another build of .* is running"):
            build_index(corpus(), ix, HashEmbedder(), progress=False, lock_timeout=0.3)
    assert _results(ix) == built[1]


# ---------------------------------------------------------------- corruption
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _bm25_file(ix: Path) -> Path:
    return max((p for p in (ix / "bm25").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _other_model(ix: Path) -> None:
    m = json.loads((ix / MANIFEST).read_text(encoding="utf-8"))
    m["build"]["model"]["name"] = "intfloat/multilingual-e5-large"
    (ix / MANIFEST).write_text(json.dumps(m), encoding="utf-8")


def _altered_counts(ix: Path) -> None:
    m = json.loads((ix / MANIFEST).read_text(encoding="utf-8"))
    m["build"]["counts"]["chunks"] += 7
    (ix / MANIFEST).write_text(json.dumps(m), encoding="utf-8")


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _resealed(change):
    """A manifest edited and sealed again (as a careful hand edit would), so only the content is wrong."""
    def damage(ix: Path) -> None:
        from index.store.manifest import seal_of

        m = json.loads((ix / MANIFEST).read_text(encoding="utf-8"))
        change(m)
        m["manifest_sha256"] = seal_of(m)
        (ix / MANIFEST).write_text(json.dumps(m), encoding="utf-8")
    return damage


def _same_length_edit(path: Path) -> None:
    """Replace one Chinese character with another: the size stays, only the sha256 can tell."""
    text = path.read_text(encoding="utf-8")
    at = text.index("医保")
    path.write_text(text[:at] + "社保" + text[at + 2:], encoding="utf-8")


CORRUPTIONS = [
    pytest.param(_resealed(lambda m: m.__setitem__("files", {})), ("manifest.json", "incomplete", "'files'"),
                 id="manifest-files-empty"),
    pytest.param(_resealed(lambda m: m["build"].pop("model")), ("manifest.json", "incomplete", "model"),
                 id="manifest-without-model"),
    pytest.param(_resealed(lambda m: m["build"].pop("counts")), ("manifest.json", "incomplete", "counts"),
                 id="manifest-without-counts"),
    pytest.param(lambda ix: _same_length_edit(ix / "documents.jsonl"),
                 ("documents.jsonl", "does not match its recorded sha256"), id="documents-same-length-edit"),
    pytest.param(lambda ix: _same_length_edit(ix / "chunks.jsonl"),
                 ("chunks.jsonl", "does not match its recorded sha256"), id="chunks-same-length-edit"),
    pytest.param(lambda ix: _flip_bytes(ix / "vectors.npy"), ("vectors.npy", "does not match its recorded sha256"),
                 id="vectors-bytes-flipped"),
    pytest.param(lambda ix: _truncate(ix / "dense.faiss"), ("dense.faiss", "missing or truncated"),
                 id="faiss-truncated"),
    pytest.param(lambda ix: _truncate(_bm25_file(ix)), ("bm25", "missing or truncated"), id="bm25-truncated"),
    pytest.param(lambda ix: _truncate(ix / "chunks.jsonl"), ("chunks.jsonl", "missing or truncated"),
                 id="chunks-truncated"),
    pytest.param(lambda ix: (ix / "vectors.npy").unlink(), ("vectors.npy", "missing"), id="vectors-missing"),
    pytest.param(lambda ix: (ix / "documents.jsonl").unlink(), ("documents.jsonl", "missing"), id="documents-missing"),
    pytest.param(lambda ix: _flip_bytes(ix / "chunks.jsonl"), ("damaged",), id="chunks-bytes-altered"),
    pytest.param(lambda ix: (ix / MANIFEST).write_text('{"schema_version": 1, "mod', encoding="utf-8"),
                 ("manifest.json", "unreadable"), id="manifest-truncated"),
    pytest.param(_altered_counts, ("inconsistent",), id="manifest-altered-counts"),
    pytest.param(lambda ix: (ix / MANIFEST).unlink(), ("no index at",), id="manifest-missing"),
    pytest.param(_other_model, ("multilingual-e5-large", "POLICYQA_MODEL"), id="manifest-other-model"),
]


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """``policyqa ARGS`` in-process (the console-script entry point, fake embedder): (exit code, stderr)."""
    import index.embed
    from app import cli

    monkeypatch.setattr(index.embed, "load_embedder", lambda spec=None: HashEmbedder())

    def run(*args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["policyqa", *args])
        code = 0
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return code, capsys.readouterr().err

    return run


@pytest.mark.parametrize("damage, says", CORRUPTIONS)
def test_damaged_index_is_refused_with_the_fix(built, tmp_path, damage, says, run_cli):
    ix = _copy(built[0], tmp_path / "ix")
    damage(ix)
    for args in (["search", QUERIES[0]], ["docs"], ["serve", "--port", "0"]):
        code, err = run_cli(*args, "--index", str(ix))
        if args[0] == "docs" and code == 0:
            continue  # docs reads only the manifest and documents.jsonl: other damage does not concern it
        assert code == 2, (args, err)
        assert "Traceback" not in err and err.startswith("错误 / error:") and err.count("\n") == 1, err
        assert "policyqa ingest" in err, err
        if args[0] != "docs":
            for word in says:
                assert word in err, (word, err)
    # the fix the message names works
    code, err = run_cli("ingest", str(ROOT / "corpus"), "--index", str(ix), "--no-progress")
    assert code == 0, err
    assert _results(ix) == built[1]


@pytest.mark.slow
def test_serve_on_a_damaged_index_exits_with_the_message_instead_of_crash_looping(built, tmp_path):
    ix = _copy(built[0], tmp_path / "ix")
    _truncate(ix / "dense.faiss")
    r = policyqa("serve", "--index", str(ix), "--port", "0", timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "dense.faiss is missing or truncated" in r.stderr and "policyqa ingest" in r.stderr


@pytest.mark.slow
def test_a_running_server_keeps_answering_when_its_index_is_damaged_underneath(built, tmp_path):
    """The server holds its index in memory: damage on disk changes nothing until restart (then it is refused)."""
    import socket

    import httpx

    ix = _copy(built[0], tmp_path / "ix")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*FAKE_CLI, "serve", "--index", str(ix), "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/config", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        _truncate(ix / "dense.faiss")
        with httpx.Client(timeout=30) as c:
            event = c.post(f"{url}/gradio_api/call/search",
                           json={"data": [QUERIES[0], 3, "hybrid", None, None, None, None]}).json()["event_id"]
            stream = c.get(f"{url}/gradio_api/call/search/{event}").text
        assert "event: complete" in stream and "provision_id" in stream, stream
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---------------------------------------------------------------- memory under load
def test_api_calls_do_not_pile_up_session_state(built, monkeypatch):
    """Each HTTP API call is a new Gradio session; the server keeps at most MAX_SESSIONS of them (memory stays flat)."""
    import socket

    import httpx

    from app import serve as serve_mod

    monkeypatch.setattr(serve_mod, "MAX_SESSIONS", 5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    searcher = Searcher.load(built[0], HashEmbedder())
    demo = serve_mod.serve(None, port=port, searcher=searcher, block=False)
    try:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=30) as c:
            for i in range(12):
                event = c.post(f"{url}/gradio_api/call/search",
                               json={"data": [QUERIES[i % 4], 3, "bm25", None, None, None, None]}).json()["event_id"]
                assert "event: complete" in c.get(f"{url}/gradio_api/call/search/{event}").text
        assert len(demo.state_holder.session_data) <= 5
    finally:
        demo.close()
    assert serve_mod.launch_options()["state_session_capacity"] == 5


def test_a_large_index_keeps_the_page_small():
    """58k documents once made a 25 MB page (and a failed start-up check): dropdowns list at most MAX_CHOICES and
    then accept a typed id, which is still checked against the index."""
    import gradio as gr

    from app.ui import MAX_CHOICES, SearchApp, build_ui
    from index_fixtures import make_document

    class Many:
        documents = {f"d{i:04d}": make_document(f"d{i:04d}", f"文件{i}", [(("第一条",), "医保异地结算。")],
                                                region=f"地区{i}") for i in range(MAX_CHOICES + 20)}

        def run(self, request):
            from index.request import REASON_FILTERED, SearchResponse

            assert request.doc == "not-an-id"  # a typed id reaches the searcher, which knows what the index holds
            return SearchResponse((), (), REASON_FILTERED, query=request.query)

    app = SearchApp(Many())
    choices = app.filter_choices()
    assert len(choices["doc"]) == len(choices["region"]) == MAX_CHOICES + 1  # + "全部"
    assert app.choices_cut("doc") and app.choices_cut("region") and not app.choices_cut("issuer")
    demo = build_ui(Many())
    drops = {b.elem_id: b for b in demo.blocks.values() if isinstance(b, gr.Dropdown)}
    assert drops["pq-f-doc"].allow_custom_value and not drops["pq-f-issuer"].allow_custom_value
    assert "没有符合筛选条件的文件" in app.search_view("医保", doc="not-an-id")[0]
