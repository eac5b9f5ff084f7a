"""The one reader of GGUF headers: metadata, the key/value block's byte range, every tensor's name,
shape, type and data offset — without building an object per array element.

gguf-py's GGUFReader turns every element of every array into numpy objects: seconds and ~80 MB on a
model with a 32k-150k-token vocabulary, where llama.cpp needs milliseconds. Here arrays are skipped
in place (a string array's lengths are walked without making strings), except those `keep_array`
asks for. Every count and length is checked against the bytes left in the file, and every tensor's
data against the file's size, so a damaged or hostile header fails with a `GGUFError` naming the
problem instead of a long loop, a huge allocation or a read past the end.
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"GGUF"
MAX_DIMS = 4
MAX_ARRAY_NESTING = 8     # llama.cpp reads no nested arrays at all; deeper is a crafted file (and recursion)
MAX_KEPT_ARRAY = 65536     # numeric/string arrays asked for by `keep_array` are read up to this length
DEFAULT_ALIGNMENT = 32
# GGUF value types: id -> (struct format, size)
_SCALARS = {0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4), 6: ("<f", 4),
            7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8)}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")


class GGUFError(ValueError):
    """The file is not a sound GGUF (the message says what is wrong; callers add the path)."""


def is_gguf(path: str | Path) -> bool:
    """True when the file starts with the GGUF magic (nothing else is read)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


def ggml_type_name(ggml_type: int) -> str:
    import gguf
    try:
        return gguf.GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"type{ggml_type}"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]      # numpy order (ggml's ne reversed)
    ggml_type: int
    offset: int                 # absolute offset of the data in the file

    @property
    def ne(self) -> tuple[int, ...]:
        """ggml's dimension order (fastest-varying first)."""
        return tuple(reversed(self.shape))

    @property
    def qtype(self):
        import gguf
        return gguf.GGMLQuantizationType(self.ggml_type)

    @property
    def type_name(self) -> str:
        return ggml_type_name(self.ggml_type)

    @property
    def nbytes(self) -> int:
        """Bytes of data; GGUFError for a type this gguf-py does not know or rows that are not whole blocks."""
        import gguf
        try:
            block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(self.ggml_type)]
        except (ValueError, KeyError):
            raise GGUFError(f"tensor {self.name!r} has unknown type {self.ggml_type}") from None
        n = 1
        for d in self.shape:
            n *= d
        if self.shape and self.shape[-1] % block:
            raise GGUFError(f"tensor {self.name!r}: rows of {self.shape[-1]} are not whole {self.type_name} blocks")
        return n // block * size


@dataclass
class GGUFHeader:
    path: Path
    version: int
    n_kv: int
    kv_range: tuple[int, int]                                     # byte range of the key/value block
    alignment: int
    data_start: int                                               # where tensor data begins
    metadata: dict[str, object] = field(default_factory=dict)     # scalars, strings, kept arrays
    array_lengths: dict[str, int] = field(default_factory=dict)
    tensors: dict[str, TensorInfo] = field(default_factory=dict)  # in file order

    def kv_bytes(self) -> bytes:
        """The key/value block exactly as in the file (a merge copies it byte for byte)."""
        start, end = self.kv_range
        with open(self.path, "rb") as f:
            f.seek(start)
            data = f.read(end - start)
        if len(data) != end - start:
            raise GGUFError("the file changed while it was read")
        return data

    @property
    def general_type(self) -> str:
        value = self.metadata.get("general.type")
        return value if isinstance(value, str) else ""

    @property
    def architecture(self) -> str:
        value = self.metadata.get("general.architecture")
        return value if isinstance(value, str) else ""


class _Cursor:
    def __init__(self, data):
        self.data, self.pos, self.size = data, 0, len(data)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise GGUFError(f"the header ends early (wanted {n} bytes at offset {self.pos} of {self.size}): "
                            "the file is truncated or corrupt")
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
            raise GGUFError("the header ends early (a value runs past the end of the file)")
        self.pos += n

    def left(self) -> int:
        return self.size - self.pos


def _value(cur: _Cursor, vtype: int):
    if vtype in _SCALARS:
        return cur.unpack(*_SCALARS[vtype])
    if vtype == _STRING:
        return cur.string()
    raise GGUFError(f"unknown GGUF value type {vtype}")


def _skip_array(cur: _Cursor, etype: int, count: int, depth: int = 1) -> None:
    if depth > MAX_ARRAY_NESTING:
        raise GGUFError(f"arrays nested more than {MAX_ARRAY_NESTING} deep")
    if etype in _SCALARS:
        cur.skip(count * _SCALARS[etype][1])
    elif etype == _STRING:
        if count * 8 > cur.left():
            raise GGUFError("a string array is longer than the file")
        # A vocabulary is ~10⁵ strings: walk the lengths in place (no per-string objects).
        data, pos, size, unpack_from = cur.data, cur.pos, cur.size, _U64.unpack_from
        for _ in range(count):
            if pos + 8 > size:
                raise GGUFError("the header ends early (a string array runs past the end of the file)")
            pos += 8 + unpack_from(data, pos)[0]
        if pos > size:
            raise GGUFError("the header ends early (a string runs past the end of the file)")
        cur.pos = pos
    elif etype == _ARRAY:
        if count * 12 > cur.left():
            raise GGUFError("a nested array is longer than the file")
        for _ in range(count):
            inner, n = cur.u32(), cur.u64()
            _skip_array(cur, inner, n, depth + 1)
    else:
        raise GGUFError(f"unknown GGUF array element type {etype}")


def read_header(path: str | Path, keep_array=None) -> GGUFHeader:
    """Parse the header of a GGUF file; GGUFError (with the reason) when it is not a sound GGUF.

    Arrays are skipped, except numeric or string ones whose key `keep_array(key)` accepts (e.g. a
    per-layer head count): those land in `metadata` as lists."""
    path = Path(path)
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if size < 24:
            raise GGUFError("the file is too small to be a GGUF")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _parse(path, _Cursor(data), keep_array)


def _parse(path: Path, cur: _Cursor, keep_array) -> GGUFHeader:
    if cur.take(4) != MAGIC:
        raise GGUFError("no GGUF magic at the start: not a GGUF file")
    version = cur.u32()
    if version not in (2, 3):
        raise GGUFError(f"GGUF version {version} is not supported")
    n_tensors, n_kv = cur.u64(), cur.u64()
    if n_kv * 12 > cur.left() or n_tensors * 24 > cur.left():
        raise GGUFError(f"the header claims {n_kv} metadata entries and {n_tensors} tensors, more than the "
                        "file holds")
    kv_start = cur.pos
    metadata: dict[str, object] = {}
    array_lengths: dict[str, int] = {}
    for _ in range(n_kv):
        key = cur.string()
        vtype = cur.u32()
        if vtype == _ARRAY:
            etype, count = cur.u32(), cur.u64()
            array_lengths[key] = count
            if keep_array is not None and count <= MAX_KEPT_ARRAY and (etype in _SCALARS or etype == _STRING) \
                    and keep_array(key):
                if count * (_SCALARS[etype][1] if etype in _SCALARS else 8) > cur.left():
                    raise GGUFError(f"array {key!r} claims {count} entries, more than the file holds")
                metadata[key] = [_value(cur, etype) for _ in range(count)]
            else:
                _skip_array(cur, etype, count)
        else:
            metadata[key] = _value(cur, vtype)
    kv_end = cur.pos
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or not 1 <= alignment <= 1 << 20 \
            or alignment & (alignment - 1):
        raise GGUFError(f"general.alignment {alignment!r} is not a power of two")
    raw = []
    for _ in range(n_tensors):
        name = cur.string()
        n_dims = cur.u32()
        if not 1 <= n_dims <= MAX_DIMS:
            raise GGUFError(f"tensor {name!r} has {n_dims} dimensions")
        ne = tuple(cur.u64() for _ in range(n_dims))
        ggml_type, rel = cur.u32(), cur.u64()
        raw.append((name, tuple(reversed(ne)), ggml_type, rel))
    data_start = cur.pos + (alignment - cur.pos % alignment) % alignment
    head = GGUFHeader(path, version, n_kv, (kv_start, kv_end), alignment, data_start, metadata, array_lengths)
    for name, shape, ggml_type, rel in raw:
        if name in head.tensors:
            raise GGUFError(f"tensor {name!r} appears twice")
        info = TensorInfo(name, shape, ggml_type, data_start + rel)
        try:
            end = info.offset + info.nbytes
        except GGUFError:
            end = info.offset       # a type this gguf-py does not know: llama.cpp will judge its size
        if end > cur.size:
            raise GGUFError(f"tensor {name!r} lies outside the file (its data ends at byte {end}, the file has "
                            f"{cur.size}): the file is truncated or corrupt")
        head.tensors[name] = info
    return head
