"""Write GGUF files tensor by tensor, atomically.

GGUF puts every tensor's name, shape and offset before the data, so a writer must know them all
before the first byte of data. Two ways to keep memory at one tensor:

* `StreamedGGUFWriter` — names are known up front but shapes only as tensors are computed (a DoRA
  module's rank comes out of its SVD). The header's size does not depend on the shapes (every
  dimension is a fixed-width integer), so the writer reserves it, streams each tensor's data straight
  behind it, and writes the real header over the reserved bytes in `commit()`.
* `DeclaredGGUFWriter` — shapes are known up front (merging into a base keeps every shape): declare
  them all, then write the data in the same order straight into the output.

Both publish through `atomic.AtomicFile`: a hidden temporary file in the destination folder, fsync'd
and `os.replace`d onto the destination only when complete; any error (or a cancelled job) deletes the
temporary file, so an interrupted run never leaves a half-written file under the requested name. A
full or read-only disk is reported naming the output (disk_space.WriteFailed); `DeclaredGGUFWriter`
checks for room before its first byte.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import PUBLIC, AtomicFile
from ..disk_space import check_room, writing
from .header import GGUFHeader
from .tensors import encode


def _pad(n: int, align: int) -> int:
    return (align - n % align) % align


def _write_gguf_head(writer, path: Path):
    """Header, KV pairs and tensor infos of `writer` into a new file at `path`, padded to the data
    alignment; returns the open file, positioned where the tensor data starts."""
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    fout = writer.fout[0]
    fout.write(b"\0" * _pad(fout.tell(), writer.data_alignment))
    return fout


class _GGUFBase:
    def __init__(self, dest: str | os.PathLike, arch: str):
        import gguf
        self.dest = Path(dest)
        self.kv = gguf.GGUFWriter(path=None, arch=arch)   # KV + tensor infos; we write the data
        self._out = AtomicFile(self.dest, mode=PUBLIC)
        self._closed = False

    # context manager: any exception discards the temporary file
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.abort()
        return False

    def _write_head(self):
        with writing(self.dest):
            return _write_gguf_head(self.kv, self._out.tmp)

    def _put(self, *parts) -> None:
        """Write `parts` (bytes-like) to the output; a full or read-only disk is said naming it."""
        with writing(self.dest):
            for part in parts:
                self._fout.write(part)

    def _publish(self, fout, last_step) -> Path:
        """`last_step()` (final checks and writes), then flush, fsync and move the file onto `dest`;
        any error discards the temporary file."""
        try:
            last_step()
            self._out.commit(fout)
            self._closed = True
            self.kv.fout = None
        except BaseException:
            self.abort()
            raise
        return self.dest

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.kv.fout:
                for f in self.kv.fout:
                    f.close()
        except Exception:  # closing on the error path must not hide the first error
            pass
        self._out.discard()


class StreamedGGUFWriter(_GGUFBase):
    """Tensors `names` (each `n_dims`-dimensional), added in that order with `add_tensor`; the KV
    pairs come from `fill_kv(gguf_writer)`, called now for the reserved header and again in `commit()`
    for the real one, so a value known only at the end (llama.cpp's alpha) can change there as long
    as its encoded size does not (numbers; not strings)."""

    def __init__(self, dest, arch: str, names, fill_kv, n_dims: int = 2):
        super().__init__(dest, arch)
        self._fill_kv, self._n_dims = fill_kv, n_dims
        self._names = list(names)
        self._infos: list[tuple[str, tuple[int, ...], object, int, object]] = []
        try:
            fill_kv(self.kv)
            for name in self._names:       # placeholder shapes: same byte size as the real ones
                self.kv.add_tensor_info(name, (1,) * n_dims, np.dtype(np.float32), 4)
            self._fout = self._write_head()
            self._data_start = self._fout.tell()
        except BaseException:
            self.abort()
            raise

    def add_tensor(self, name: str, arr: np.ndarray, qtype) -> None:
        if len(self._infos) >= len(self._names) or name != self._names[len(self._infos)]:
            raise RuntimeError(f"tensor {name!r} written out of order")
        if arr.ndim != self._n_dims:
            raise RuntimeError(f"tensor {name!r} has {arr.ndim} dimensions, declared {self._n_dims}")
        raw = encode(arr, qtype)
        raw_dtype = None if raw.dtype in (np.float32, np.float16) else qtype
        self._infos.append((name, raw.shape, raw.dtype, raw.nbytes, raw_dtype))
        # not ndarray.tofile: its short-write error carries no errno
        self._put(memoryview(np.ascontiguousarray(raw)).cast("B"), b"\0" * _pad(raw.nbytes, self.kv.data_alignment))

    def _final_head(self) -> bytes:
        import gguf
        head = gguf.GGUFWriter(path=None, arch=self.kv.arch)
        self._fill_kv(head)
        for name, shape, dtype, nbytes, raw_dtype in self._infos:
            head.add_tensor_info(name, shape, dtype, nbytes, raw_dtype=raw_dtype)
        path = self._out.tmp.with_name(self._out.tmp.name + ".head")
        try:
            _write_gguf_head(head, path)
            head.close()
            data = path.read_bytes()
        finally:
            path.unlink(missing_ok=True)
        if head.data_alignment != self.kv.data_alignment:
            raise RuntimeError("the final header changed the data alignment")
        return data

    def _write_final_head(self) -> None:
        if len(self._infos) != len(self._names):
            raise RuntimeError(f"only {len(self._infos)} of {len(self._names)} tensors were written")
        head = self._final_head()
        if len(head) != self._data_start:
            raise RuntimeError(f"the final header takes {len(head)} bytes, {self._data_start} were reserved")
        self._fout.seek(0)
        self._put(head)

    def commit(self) -> Path:
        return self._publish(self._fout, self._write_final_head)


class DeclaredGGUFWriter(_GGUFBase):
    """Declare every tensor (name, numpy shape, qtype) first, then `begin()` and write them in order,
    whole (`write`) or in row chunks (`begin_tensor`, `write_data`…, `end_tensor`).

    `copy_kv_from=header` copies another file's key/value block verbatim instead of the KV pairs added
    through `.kv` (a merge keeps the base's metadata byte for byte)."""

    def __init__(self, dest, arch: str, copy_kv_from: GGUFHeader | None = None):
        raw_kv = None
        if copy_kv_from is not None:
            raw_kv = (copy_kv_from.n_kv, copy_kv_from.kv_bytes(), copy_kv_from.alignment)
        super().__init__(dest, arch)
        self._order: list[tuple[str, int]] = []
        self._infos: list[tuple[str, tuple[int, ...], int, int]] = []
        self._raw_kv = raw_kv
        self._fout = None
        self._next = 0
        self._current: tuple[str, int] | None = None
        self._written = 0

    def declare(self, name: str, shape, qtype, nbytes: int) -> None:
        import gguf
        shape = tuple(int(d) for d in shape)
        if self._raw_kv is None:
            byte_shape = gguf.quant_shape_to_byte_shape(shape, qtype)
            self.kv.add_tensor_info(name, byte_shape, np.dtype(np.uint8), nbytes, raw_dtype=qtype)
        self._infos.append((name, shape, int(qtype), nbytes))
        self._order.append((name, nbytes))

    def begin(self) -> None:
        align = self.kv.data_alignment if self._raw_kv is None else self._raw_kv[2]
        check_room(self.dest.parent, sum(n + _pad(n, align) for _name, n in self._order), str(self.dest))
        if self._raw_kv is None:
            self._fout = self._write_head()
        else:
            with writing(self.dest):
                self._fout = self._write_raw_head()

    def _write_raw_head(self):
        import struct
        n_kv, kv_bytes, align = self._raw_kv
        self.kv.data_alignment = align
        fout = open(self._out.tmp, "wb")
        self.kv.fout = [fout]       # closed by abort()/commit() like GGUFWriter's own files
        fout.write(b"GGUF" + struct.pack("<IQQ", 3, len(self._infos), n_kv))
        fout.write(kv_bytes)
        offset = 0
        for name, shape, qtype, nbytes in self._infos:
            raw = name.encode("utf-8")
            fout.write(struct.pack("<Q", len(raw)) + raw + struct.pack("<I", len(shape)))
            fout.write(b"".join(struct.pack("<Q", d) for d in reversed(shape)) + struct.pack("<IQ", qtype, offset))
            offset += nbytes + _pad(nbytes, align)
        fout.write(b"\0" * _pad(fout.tell(), align))
        return fout

    def begin_tensor(self, name: str) -> None:
        expected = self._order[self._next][0]
        if name != expected:
            raise RuntimeError(f"tensor {name!r} written out of order (expected {expected!r})")
        self._current = self._order[self._next]
        self._written = 0

    def write_data(self, raw) -> None:
        data = raw if isinstance(raw, (bytes, bytearray, memoryview)) else np.ascontiguousarray(raw).data
        data = memoryview(data).cast("B")
        self._put(data)
        self._written += data.nbytes

    def end_tensor(self) -> None:
        name, nbytes = self._current
        if self._written != nbytes:
            raise RuntimeError(f"tensor {name!r}: {self._written} bytes written, declared {nbytes}")
        self._put(b"\0" * _pad(nbytes, self.kv.data_alignment))
        self._next += 1
        self._current = None

    def write(self, name: str, raw) -> None:
        self.begin_tensor(name)
        self.write_data(raw)
        self.end_tensor()

    def _check_all_written(self) -> None:
        if self._next != len(self._order):
            raise RuntimeError(f"only {self._next} of {len(self._order)} declared tensors were written")

    def commit(self) -> Path:
        return self._publish(self._fout, self._check_all_written)
