"""safetensors files: the one reader (validated header, lazy tensors) and the one writer.

`SafetensorsSource` reads the safetensors header (8-byte length + JSON), checks every entry against
the file size before anything is read, and memory-maps the data so a module's tensors are read only
when asked for. `SafetensorsWriter` streams tensors into a file whose header is given up front, and
`header_bytes` builds such a header (also for the Hub's header-only skeletons). This exists beside
the `safetensors` package because that package's numpy backend has no bfloat16 (numpy has none), and
most adapters on the Hub are BF16; here BF16 is widened to float32 and written back exactly.
"""
from __future__ import annotations

import json
import mmap
import os
import struct
from pathlib import Path

import numpy as np

from ..disk_space import writing
from ..errors import AdapterFormatError
from ..json_input import JsonInputError, parse_json

# safetensors dtype -> (numpy dtype of the stored bytes, bytes per element)
_DTYPES = {
    "F64": (np.float64, 8), "F32": (np.float32, 4), "F16": (np.float16, 2), "BF16": (np.uint16, 2),
    "I64": (np.int64, 8), "I32": (np.int32, 4), "I16": (np.int16, 2), "I8": (np.int8, 1),
    "U8": (np.uint8, 1), "BOOL": (np.bool_, 1),
}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
MAX_HEADER_BYTES = 100 * 1024 * 1024   # the safetensors reference implementation's own limit


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    """uint16 bfloat16 bit patterns -> float32 (exact: bf16 is the top half of an f32)."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


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
    if dtype in ("F32", "F16", "F64"):
        return np.ascontiguousarray(x, dtype=_DTYPES[dtype][0]).tobytes()
    raise ValueError(f"cannot write float values as {dtype}")


def decode_from(raw, dtype: str, shape) -> np.ndarray:
    """Stored bytes of a float tensor → float32 of `shape`."""
    if dtype == "BF16":
        return bf16_to_f32(np.frombuffer(raw, dtype=np.uint16)).reshape(shape)
    if dtype in ("F32", "F16", "F64"):
        return np.frombuffer(raw, dtype=_DTYPES[dtype][0]).astype(np.float32).reshape(shape)
    raise ValueError(f"cannot read {dtype} as floats")


def header_bytes(tensors: dict[str, tuple[str, list[int], tuple[int, int]]], metadata: dict | None = None) -> bytes:
    """The 8-byte length and JSON header of a safetensors file: name -> (dtype, shape, data offsets)."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, (dtype, shape, offsets) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob


def read_safetensors_header(path: Path) -> tuple[dict, dict, int]:
    """Parse and validate a safetensors header → (tensors, metadata, data_start). Reads no tensor data."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise AdapterFormatError(path, "not a safetensors file: shorter than its 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES or n > size - 8:
                raise AdapterFormatError(path, f"corrupt safetensors header: declares {n} header bytes "
                                               f"in a {size}-byte file")
            raw = f.read(n)
    except OSError as exc:
        raise AdapterFormatError(path, f"cannot read file: {exc.strerror or exc}") from None
    try:
        header = parse_json(raw)      # lone surrogates refused too, as the reference implementation does
    except JsonInputError as exc:
        raise AdapterFormatError(path, f"corrupt safetensors header: not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise AdapterFormatError(path, "corrupt safetensors header: not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise AdapterFormatError(path, "corrupt safetensors header: __metadata__ must map strings to strings")
    data_start = 8 + n
    data_len = size - data_start
    for name, info in header.items():
        if not isinstance(info, dict):
            raise AdapterFormatError(path, f"corrupt safetensors header: entry {name!r} is not an object")
        dtype, shape, offs = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _DTYPES:
            raise AdapterFormatError(path, f"tensor {name!r} has unsupported dtype {dtype!r}")
        if (not isinstance(shape, list) or len(shape) > 8
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in shape)):
            raise AdapterFormatError(path, f"tensor {name!r} has an invalid shape {shape!r}")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= data_len):
            raise AdapterFormatError(path, f"tensor {name!r} lies outside the file (offsets {offs!r}, "
                                           f"{data_len} data bytes): truncated or corrupt")
        count = 1
        for d in shape:
            count *= d
        if count * _DTYPES[dtype][1] != offs[1] - offs[0]:
            raise AdapterFormatError(path, f"tensor {name!r}: shape {shape} of {dtype} needs "
                                           f"{count * _DTYPES[dtype][1]} bytes, the header gives {offs[1] - offs[0]}")
    return header, metadata, data_start


def check_covered(path: Path, tensors: dict, data_start: int) -> None:
    """The tensors fill the data section exactly, one after another, as the safetensors library requires
    of a file it opens (transformers' loading): a gap, an overlap or trailing bytes mean the file was
    damaged or changed after it was written. LoRA Deck's own reading does not need it."""
    data_len = Path(path).stat().st_size - data_start
    end = 0
    for start, stop in sorted(tuple(v["data_offsets"]) for v in tensors.values()):
        if start != end:
            break
        end = stop
    if end != data_len:
        raise AdapterFormatError(path, f"its tensors do not fill its data exactly (from byte {end} of {data_len} "
                                       "on): the file was damaged or changed after it was written")


class SafetensorsSource:
    """Tensors of one safetensors file, read on demand as float32 (integer tensors keep their type)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.header, self.metadata, self._start = read_safetensors_header(self.path)
        self._mmap: mmap.mmap | None = None

    def keys(self) -> list[str]:
        return list(self.header)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self.header[key]["shape"])

    def dtype(self, key: str) -> str:
        return self.header[key]["dtype"]

    def nbytes(self, key: str) -> int:
        begin, end = self.header[key]["data_offsets"]
        return end - begin

    def _buffer(self) -> mmap.mmap:
        if self._mmap is None:
            try:
                with open(self.path, "rb") as f:
                    if self.path.stat().st_size == 0:
                        raise AdapterFormatError(self.path, "empty file")
                    self._mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except OSError as exc:       # gone since the header was read, or no address space left to map it
                raise AdapterFormatError(self.path, f"cannot read file: {exc.strerror or exc}") from None
        return self._mmap

    def read_raw(self, key: str) -> np.ndarray:
        """The tensor as stored (BF16 as uint16 bit patterns), copied out of the mapping."""
        info = self.header[key]
        np_dtype, width = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        buf = self._buffer()
        arr = np.frombuffer(buf, dtype=np_dtype, count=(end - begin) // width, offset=self._start + begin)
        return arr.reshape(info["shape"]).copy()

    def read(self, key: str) -> np.ndarray:
        if key not in self.header:
            raise AdapterFormatError(self.path, f"tensor {key!r} is missing")
        arr = self.read_raw(key)
        dtype = self.header[key]["dtype"]
        if dtype == "BF16":
            arr = bf16_to_f32(arr)
        elif dtype in ("F16", "F64"):
            arr = arr.astype(np.float32)
        if dtype in FLOAT_DTYPES and not np.isfinite(arr).all():
            raise AdapterFormatError(self.path, f"tensor {key!r} contains NaN or infinite values")
        return arr

    def close(self) -> None:
        if self._mmap is not None:
            self._mmap.close()
            self._mmap = None


class DictSource:
    """Tensors already in memory (converted formats, tests)."""

    def __init__(self, tensors: dict[str, np.ndarray], dtypes: dict[str, str] | None = None):
        self._t = tensors
        self._dtypes = dtypes or {}

    def keys(self) -> list[str]:
        return list(self._t)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._t[key].shape)

    def dtype(self, key: str) -> str:
        return self._dtypes.get(key, "F32")

    def read(self, key: str) -> np.ndarray:
        return np.asarray(self._t[key], dtype=np.float32)


class SafetensorsWriter:
    """Write tensors one by one: the header (names, dtypes, shapes) must be given up front."""

    def __init__(self, path: Path, entries: list[tuple[str, str, tuple[int, ...]]], metadata: dict | None = None):
        self.path = Path(path)
        tensors = {}
        offset = 0
        self._expected: list[tuple[str, int]] = []
        for name, dtype, shape in entries:
            n = int(np.prod(shape, dtype=np.int64)) * _DTYPES[dtype][1]
            tensors[name] = (dtype, list(shape), (offset, offset + n))
            self._expected.append((name, n))
            offset += n
        with writing(self.path):
            self._f = open(self.path, "wb")
            self._f.write(header_bytes(tensors, metadata))
        self._next = 0

    def write(self, name: str, data: bytes) -> None:
        exp, n = self._expected[self._next]
        if name != exp or len(data) != n:
            raise RuntimeError(f"safetensors writer: got {name} ({len(data)} bytes), expected {exp} ({n} bytes)")
        with writing(self.path):
            self._f.write(data)
        self._next += 1

    def close(self) -> None:
        if self._next != len(self._expected):
            self._f.close()
            raise RuntimeError(f"safetensors writer: {len(self._expected) - self._next} tensors missing")
        with writing(self.path):
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    def abort(self) -> None:
        if not self._f.closed:
            try:
                self._f.close()
            except OSError:           # closing flushes: on a full disk it fails again
                pass
