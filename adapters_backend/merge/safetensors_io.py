"""Streamed safetensors writing and float conversions for merged tensors (numpy has no bfloat16)."""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

_NP = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
FLOAT = ("F32", "F16", "BF16", "F64")


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 → bfloat16 bit patterns (uint16), round to nearest even, NaN kept quiet."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    rounded = ((u.astype(np.uint64) + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(nan, ((u >> 16) | 0x40).astype(np.uint16), rounded)


def encode_as(x: np.ndarray, dtype: str) -> bytes:
    """float32 values → the bytes of safetensors dtype `dtype`."""
    if dtype == "BF16":
        return f32_to_bf16_bits(x).tobytes()
    if dtype in _NP:
        return np.ascontiguousarray(x, dtype=_NP[dtype]).tobytes()
    raise ValueError(f"cannot write merged values as {dtype}")


def decode_from(raw: bytes, dtype: str, shape) -> np.ndarray:
    if dtype == "BF16":
        return (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if dtype in _NP:
        return np.frombuffer(raw, dtype=_NP[dtype]).astype(np.float32).reshape(shape)
    raise ValueError(f"cannot read {dtype} as floats")


class SafetensorsWriter:
    """Write tensors one by one: the header (names, dtypes, shapes) must be given up front."""

    def __init__(self, path: Path, entries: list[tuple[str, str, tuple[int, ...]]], metadata: dict | None = None):
        self.path = Path(path)
        sizes = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
        header: dict = {}
        if metadata:
            header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
        offset = 0
        self._expected: list[tuple[str, int]] = []
        for name, dtype, shape in entries:
            n = int(np.prod(shape, dtype=np.int64)) * sizes[dtype]
            header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
            self._expected.append((name, n))
            offset += n
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * ((8 - len(blob) % 8) % 8)
        self._f = open(self.path, "wb")
        self._f.write(struct.pack("<Q", len(blob)))
        self._f.write(blob)
        self._next = 0

    def write(self, name: str, data: bytes) -> None:
        exp, n = self._expected[self._next]
        if name != exp or len(data) != n:
            raise RuntimeError(f"safetensors writer: got {name} ({len(data)} bytes), expected {exp} ({n} bytes)")
        self._f.write(data)
        self._next += 1

    def close(self) -> None:
        if self._next != len(self._expected):
            self._f.close()
            raise RuntimeError(f"safetensors writer: {len(self._expected) - self._next} tensors missing")
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
