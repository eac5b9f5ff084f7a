"""A fast, bounded reader for a GGUF file's header: scalar metadata and the tensor list.

gguf-py's GGUFReader builds an object per array element, which takes seconds on a model with a
150k-token vocabulary; llama.cpp itself loads the same model in milliseconds. The engine needs only the
architecture, a few numbers and the tensor shapes, so this reader skips array contents. Every count
and length is checked against the bytes left in the file, so a damaged or hostile header fails with a
ValueError instead of a long loop or a huge allocation.
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"GGUF"
MAX_DIMS = 4
# GGUF value types: id -> (struct format, size)
_SCALARS = {0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4), 6: ("<f", 4),
            7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8)}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")


@dataclass
class GGUFHeader:
    version: int
    metadata: dict[str, object] = field(default_factory=dict)   # scalars and strings
    array_lengths: dict[str, int] = field(default_factory=dict)
    tensors: dict[str, tuple[tuple[int, ...], int]] = field(default_factory=dict)   # name -> (ne, ggml type)


class _Cursor:
    def __init__(self, data):
        self.data, self.pos, self.size = data, 0, len(data)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise ValueError(f"the header ends early (wanted {n} bytes at offset {self.pos} of {self.size})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, size: int):
        return struct.unpack(fmt, self.take(size))[0]

    def u32(self) -> int:
        return self.unpack("<I", 4)

    def u64(self) -> int:
        return self.unpack("<Q", 8)

    def string(self) -> str:
        return self.take(self.u64()).decode("utf-8", errors="replace")

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise ValueError("the header ends early (a value runs past the end of the file)")
        self.pos += n

    def left(self) -> int:
        return self.size - self.pos


def _value(cur: _Cursor, vtype: int):
    if vtype in _SCALARS:
        return cur.unpack(*_SCALARS[vtype])
    if vtype == _STRING:
        return cur.string()
    raise ValueError(f"unknown GGUF value type {vtype}")


MAX_ARRAY_NESTING = 8      # llama.cpp reads no nested arrays at all; deeper is a crafted file (and recursion)


def _skip_array(cur: _Cursor, etype: int, count: int, depth: int = 1) -> None:
    if depth > MAX_ARRAY_NESTING:
        raise ValueError(f"arrays nested more than {MAX_ARRAY_NESTING} deep")
    if etype in _SCALARS:
        cur.skip(count * _SCALARS[etype][1])
    elif etype == _STRING:
        if count * 8 > cur.left():
            raise ValueError("a string array is longer than the file")
        # A vocabulary is ~10⁵ strings: walk the lengths in place (no per-string objects).
        data, pos, size, unpack_from = cur.data, cur.pos, cur.size, _U64.unpack_from
        for _ in range(count):
            if pos + 8 > size:
                raise ValueError("the header ends early (a string array runs past the end of the file)")
            pos += 8 + unpack_from(data, pos)[0]
        if pos > size:
            raise ValueError("the header ends early (a string runs past the end of the file)")
        cur.pos = pos
    elif etype == _ARRAY:
        if count * 12 > cur.left():
            raise ValueError("a nested array is longer than the file")
        for _ in range(count):
            inner, n = cur.u32(), cur.u64()
            _skip_array(cur, inner, n, depth + 1)
    else:
        raise ValueError(f"unknown GGUF array element type {etype}")


MAX_KEPT_ARRAY = 65536     # numeric arrays asked for by `keep_array` are read up to this length


def read_gguf_header(path: str | Path, keep_array=None) -> GGUFHeader:
    """Parse the header of a GGUF file; ValueError (with the reason) when it is not a sound GGUF.

    Arrays are skipped, except numeric or string ones whose key `keep_array(key)` accepts (e.g. a
    per-layer head count): those land in `metadata` as lists."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size < 24:
            raise ValueError("the file is too small to be a GGUF")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse(_Cursor(data), keep_array)


def _parse(cur: _Cursor, keep_array=None) -> GGUFHeader:
    if cur.take(4) != MAGIC:
        raise ValueError("no GGUF magic at the start")
    version = cur.u32()
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} is not supported")
    n_tensors, n_kv = cur.u64(), cur.u64()
    if n_kv * 12 > cur.left() or n_tensors * 24 > cur.left():
        raise ValueError(f"the header claims {n_kv} metadata entries and {n_tensors} tensors, more than the file holds")
    head = GGUFHeader(version)
    for _ in range(n_kv):
        key = cur.string()
        vtype = cur.u32()
        if vtype == _ARRAY:
            etype, count = cur.u32(), cur.u64()
            head.array_lengths[key] = count
            if keep_array is not None and count <= MAX_KEPT_ARRAY and (etype in _SCALARS or etype == _STRING) \
                    and keep_array(key):
                if count * (_SCALARS[etype][1] if etype in _SCALARS else 8) > cur.left():
                    raise ValueError(f"array {key!r} claims {count} entries, more than the file holds")
                head.metadata[key] = [_value(cur, etype) for _ in range(count)]
            else:
                _skip_array(cur, etype, count)
        else:
            head.metadata[key] = _value(cur, vtype)
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.u32()
        if not 1 <= n_dims <= MAX_DIMS:
            raise ValueError(f"tensor {name!r} has {n_dims} dimensions")
        ne = tuple(cur.u64() for _ in range(n_dims))
        ggml_type = cur.u32()
        cur.u64()                                            # data offset (not needed here)
        head.tensors[name] = (ne, ggml_type)
    return head


def ggml_type_name(ggml_type: int) -> str:
    try:
        import gguf
        return gguf.GGMLQuantizationType(ggml_type).name
    except (ImportError, ValueError):
        return f"type{ggml_type}"
