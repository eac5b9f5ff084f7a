"""GGUF tensor data ↔ float32 numpy arrays: the one decoder and encoder (gguf-py's quants do the math).

`TensorFile` reads a tensor's bytes with plain file reads (no memory map kept resident, so a merge
that copies a whole model does not grow this process), and `decode` turns them into float32.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from ..fileio import read_exactly
from .header import GGUFError, GGUFHeader, TensorInfo, read_header

OUTTYPES = ("f32", "f16", "bf16", "q8_0")


def qtype_of(outtype: str):
    import gguf
    return {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
            "bf16": gguf.GGMLQuantizationType.BF16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[outtype]


@functools.cache
def quantizable_types() -> frozenset:
    """The GGML types gguf-py can write, found by asking it (its public `quantize` raises
    NotImplementedError for the types it can only read)."""
    import gguf
    from gguf import quants
    out = set()
    for qtype in gguf.GGMLQuantizationType:
        sizes = gguf.GGML_QUANT_SIZES.get(qtype)
        if sizes is None:
            continue
        try:
            quants.quantize(np.zeros((1, sizes[0]), dtype=np.float32), qtype)
        except (NotImplementedError, ValueError, TypeError, AssertionError):
            continue
        out.add(qtype)
    return frozenset(out)


def can_encode(qtype, shape) -> bool:
    """True when gguf-py can write a tensor of `shape` (numpy order) as `qtype`."""
    import gguf
    if qtype not in quantizable_types():
        return False
    block, _size = gguf.GGML_QUANT_SIZES[qtype]
    return shape[-1] % block == 0


def nbytes_of(shape, qtype) -> int:
    import gguf
    block, size = gguf.GGML_QUANT_SIZES[qtype]
    return int(np.prod(shape[:-1], dtype=np.int64)) * (shape[-1] // block) * size


def encode(arr: np.ndarray, qtype) -> np.ndarray:
    """float32 array → what GGUF stores for `qtype` (float32/float16 arrays, or quantized bytes)."""
    import gguf
    from gguf import quants

    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if qtype == gguf.GGMLQuantizationType.F32:
        return arr
    if qtype == gguf.GGMLQuantizationType.F16:
        return arr.astype(np.float16)
    return quants.quantize(arr, qtype)


def decode(raw: np.ndarray, qtype, shape) -> np.ndarray:
    """The stored bytes (uint8) of a tensor of `qtype` → float32 of `shape` (numpy order)."""
    import gguf
    from gguf import quants

    raw = np.asarray(raw)
    if qtype == gguf.GGMLQuantizationType.F32:
        out = raw.view(np.float32)
    elif qtype == gguf.GGMLQuantizationType.F16:
        out = raw.view(np.float16).astype(np.float32)
    else:
        out = np.asarray(quants.dequantize(raw, qtype), dtype=np.float32)
    return out.reshape(shape)


def first_nonfinite(path: str | os.PathLike) -> str | None:
    """The name of the first tensor of a GGUF file that holds a NaN or an infinity; None when every value
    is a number. Reads each tensor once, one at a time (meant for adapters, not models); GGUFError for
    one that cannot be decoded."""
    with TensorFile(path) as f:
        for name in f.tensors:
            if not np.isfinite(f.read(name)).all():
                return name
    return None


class TensorFile:
    """Read tensors of one GGUF file by name (header parsed once, data read on request)."""

    def __init__(self, path: str | os.PathLike, header: GGUFHeader | None = None):
        self.path = Path(path)
        self.header = header or read_header(self.path)
        self._file = None

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        return self.header.tensors

    def __contains__(self, name: str) -> bool:
        return name in self.header.tensors

    def raw(self, info: TensorInfo, start: int = 0, length: int | None = None) -> bytearray:
        """`length` bytes of the tensor's data from `start` (default: all of it)."""
        if self._file is None:
            self._file = open(self.path, "rb", buffering=0)     # unbuffered: big reads go straight through
        n = info.nbytes - start if length is None else length
        try:
            return read_exactly(self._file, info.offset + start, n)
        except EOFError:
            raise GGUFError(f"tensor {info.name!r} is cut short: the file is truncated") from None

    def read(self, name: str) -> np.ndarray:
        """The tensor as float32 in numpy order; GGUFError when it cannot be decoded."""
        info = self.header.tensors[name]
        try:
            return decode(np.frombuffer(self.raw(info), dtype=np.uint8), info.qtype, info.shape)
        except NotImplementedError:
            raise GGUFError(f"tensor {name!r} is stored as {info.type_name}, which gguf-py cannot dequantize") \
                from None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
