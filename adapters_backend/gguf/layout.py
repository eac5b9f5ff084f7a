"""A GGUF file's layout, read without parsing its metadata values: where the key/value block lies (to
copy it byte for byte), every tensor's name, shape, type and data offset.

gguf-py's GGUFReader turns every element of every array into numpy objects — ~80 MB and over a second
for a 32k-token vocabulary — while a merge only needs to copy the metadata and find the tensors.
Every length is checked against the file size, so a damaged header fails with a clear error.
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BaseModelError

_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9
_ALIGNMENT_KEY = "general.alignment"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]      # numpy order (reversed ggml ne)
    ggml_type: int
    offset: int                 # absolute offset of the data in the file

    @property
    def qtype(self):
        import gguf
        return gguf.GGMLQuantizationType(self.ggml_type)

    @property
    def nbytes(self) -> int:
        import gguf
        block, size = gguf.GGML_QUANT_SIZES[self.qtype]
        n = 1
        for d in self.shape:
            n *= d
        return n // block * size


@dataclass
class GGUFLayout:
    path: Path
    version: int
    n_kv: int
    kv_bytes: bytes                                  # the key/value block exactly as in the file
    alignment: int
    tensors: list[TensorInfo] = field(default_factory=list)
    scalars: dict[str, object] = field(default_factory=dict)   # scalar values (strings, numbers)


class _Cur:
    def __init__(self, buf, path):
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise BaseModelError(self.path, "GGUF header runs past the end of the file (truncated or corrupt)")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def u(self, fmt: str, n: int):
        return struct.unpack(fmt, self.take(n))[0]

    def string(self) -> bytes:
        return self.take(self.u("<Q", 8))


MAX_ARRAY_NESTING = 8      # llama.cpp reads no nested arrays at all; deeper is a crafted file (and recursion)


def _skip_value(cur: _Cur, vtype: int, depth: int = 0):
    """Skip one value; returns it for scalars and strings (None for arrays)."""
    if depth > MAX_ARRAY_NESTING:
        raise BaseModelError(cur.path, f"GGUF metadata has arrays nested more than {MAX_ARRAY_NESTING} deep")
    if vtype in _SCALAR_SIZES:
        fmt = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
               12: "<d"}[vtype]
        return cur.u(fmt, _SCALAR_SIZES[vtype])
    if vtype == _STRING:
        return cur.string().decode("utf-8", errors="replace")
    if vtype == _ARRAY:
        etype, count = cur.u("<I", 4), cur.u("<Q", 8)
        if etype in _SCALAR_SIZES:
            cur.take(count * _SCALAR_SIZES[etype])
        elif etype in (_STRING, _ARRAY):
            if count * (8 if etype == _STRING else 12) > len(cur.buf) - cur.pos:
                raise BaseModelError(cur.path, f"a GGUF metadata array claims {count} entries, more than the file holds")
            for _ in range(count):
                if etype == _STRING:
                    cur.string()
                else:
                    _skip_value(cur, _ARRAY, depth + 1)
        else:
            raise BaseModelError(cur.path, f"unknown GGUF array element type {etype}")
        return None
    raise BaseModelError(cur.path, f"unknown GGUF value type {vtype}")


def read_layout(path: str | Path) -> GGUFLayout:
    path = Path(path)
    if path.stat().st_size < 24:        # (an empty file cannot even be mapped)
        raise BaseModelError(path, "too small to be a GGUF file")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        cur = _Cur(mm, path)
        if cur.take(4) != b"GGUF":
            raise BaseModelError(path, "not a GGUF file")
        version = cur.u("<I", 4)
        if version not in (2, 3):
            raise BaseModelError(path, f"unsupported GGUF version {version}")
        n_tensors, n_kv = cur.u("<Q", 8), cur.u("<Q", 8)
        if n_kv * 12 > len(mm) - cur.pos or n_tensors * 24 > len(mm) - cur.pos:
            raise BaseModelError(path, f"GGUF header claims {n_kv} metadata entries and {n_tensors} tensors, "
                                       "more than the file holds (truncated or corrupt)")
        kv_start = cur.pos
        scalars: dict[str, object] = {}
        for _ in range(n_kv):
            key = cur.string().decode("utf-8", errors="replace")
            value = _skip_value(cur, cur.u("<I", 4))
            if value is not None:
                scalars[key] = value
        kv_bytes = bytes(mm[kv_start:cur.pos])
        alignment = scalars.get(_ALIGNMENT_KEY, 32)
        # llama.cpp's own rule: a power of two (0, a float or a string is a damaged file, not a crash)
        if isinstance(alignment, bool) or not isinstance(alignment, int) or alignment <= 0 \
                or alignment & (alignment - 1):
            raise BaseModelError(path, f"{_ALIGNMENT_KEY} is {alignment!r}; it must be a power of two")
        infos = []
        for _ in range(n_tensors):
            name = cur.string().decode("utf-8", errors="replace")
            n_dims = cur.u("<I", 4)
            if not 0 < n_dims <= 4:
                raise BaseModelError(path, f"tensor {name} has {n_dims} dimensions")
            ne = [cur.u("<Q", 8) for _ in range(n_dims)]
            ggml_type, rel = cur.u("<I", 4), cur.u("<Q", 8)
            infos.append((name, tuple(reversed(ne)), ggml_type, rel))
        data_start = cur.pos + (alignment - cur.pos % alignment) % alignment
        size = len(mm)
    tensors = [TensorInfo(n, s, t, data_start + rel) for n, s, t, rel in infos]
    import gguf
    known_types = {int(q) for q in gguf.GGML_QUANT_SIZES}
    for t in tensors:
        if t.ggml_type not in known_types:
            raise BaseModelError(path, f"tensor {t.name} has unknown type {t.ggml_type}")
        if t.offset + t.nbytes > size:
            raise BaseModelError(path, f"tensor {t.name} lies outside the file (truncated or corrupt)")
    return GGUFLayout(path, version, n_kv, kv_bytes, alignment, tensors, scalars)
