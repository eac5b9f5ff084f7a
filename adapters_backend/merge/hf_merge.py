"""Bake adapters into a Hugging Face safetensors model folder: a new folder transformers loads as is.

Every shard is rewritten with the same tensor names, dtypes, shapes and order (so the index and the
sharding stay valid); tensors no adapter touches are copied byte for byte, touched ones get
W + Σ sᵢ·ΔWᵢ computed in float32 and stored back in their own dtype (BF16 rounded to nearest even).
config.json, tokenizer and other small files are copied; other weight formats (*.bin, *.pt…) are
left out, since they would still hold the unmerged weights. The new folder appears only when complete.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..convert.base_weights import HFTensors
from ..convert.factors import is_dense
from ..core.base_model import load_base_model
from ..core.compat import require_compatible
from ..disk_space import writing
from ..fileio import read_exactly
from ..formats.safetensors_io import FLOAT_DTYPES, SafetensorsWriter, decode_from, encode_as, read_safetensors_header
from ..jobs import JobContext
from ..value_range import ValuesDoNotFit, require_fit
from .common import MergeError, MergeResult, finish_output_dir, prepare_output_dir, read_adapters

CHUNK_BYTES = 32 * 1024 * 1024
_STALE_WEIGHTS = (".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack", ".safetensors")


def _read(f, offset: int, n: int) -> bytearray:
    try:
        return read_exactly(f, offset, n)
    except EOFError:
        raise MergeError(f"{f.name}: the base model shard is truncated") from None


class _Update:
    """One adapter module's change to one checkpoint tensor, in the tensor's stored layout."""

    def __init__(self, adapter, mod, strength: float, stored_transposed: bool):
        self.adapter, self.mod, self.s = adapter, mod, np.float32(strength)
        self.transposed = stored_transposed     # Conv1D: stored (in, out)
        self.A = self.B = self.dense = None

    def prepare(self, whole: np.ndarray | None) -> None:
        from ..core.variants import dense_delta, lowrank
        t = self.adapter.tensors(self.mod)
        if self.mod.variant == "full":     # modules_to_save: W + s·(W_new − W), in the stored layout
            stored = np.asarray(t["weight"], dtype=np.float32)
            if stored.shape != whole.shape:
                stored = stored.T
            self.dense = stored - whole
        elif is_dense(self.mod):
            w = whole.T if self.transposed else whole
            d = np.asarray(dense_delta(self.mod, t, np.ascontiguousarray(w)), dtype=np.float32)
            self.dense = np.ascontiguousarray(d.T) if self.transposed else d
        else:
            A, B = lowrank(self.mod, t)
            A, B = np.asarray(A, dtype=np.float32), np.asarray(B, dtype=np.float32)
            # stored layout rows: Linear/embedding ΔW = B·A; Conv1D ΔWᵀ = Aᵀ·Bᵀ
            self.A, self.B = (B.T, A.T) if self.transposed else (A, B)

    def rows(self, r0: int, r1: int) -> np.ndarray:
        if self.dense is not None:
            return self.s * self.dense[r0:r1]
        return self.s * (self.B[r0:r1] @ self.A)


def merge_into_hf(base_folder, adapters, out, *, overwrite: bool = False,
                  ctx: JobContext | None = None) -> MergeResult:
    """Merge [(adapter, strength)…] into the HF folder `base_folder`, writing the folder `out`."""
    ctx = ctx or JobContext()
    base_folder = Path(base_folder)
    base = load_base_model(base_folder)
    if base.kind != "hf":
        raise MergeError(f"{base_folder}: not a Hugging Face model folder")
    if Path(out).resolve() == base_folder.resolve():
        raise MergeError(f"{out}: the output must be a new folder, not the base model itself")
    loaded = read_adapters(adapters, base)
    ckpt = HFTensors(base_folder)
    result = MergeResult(Path(out))
    updates: dict[str, list[_Update]] = {}
    notes: set[str] = set()
    for adapter, strength in loaded:
        require_compatible(adapter, base, engine="torch")
        for mod in adapter:
            if mod.variant == "bias":
                result.warnings.append(f"{adapter.path}: skipped {mod.name}: merging replacement biases is not "
                                       "supported yet")
                continue
            if "bias" in mod.roles:
                result.warnings.append(f"{adapter.path}: the bias update of {mod.name} (lora_bias) is not merged")
            key = ckpt.find(mod.name)
            if key is None:
                result.warnings.append(f"{adapter.path}: skipped {mod.name}: no such weight in the checkpoint")
                continue
            m = base.match(mod.name)
            conv1d = bool(m and m.rule.kind == "conv1d") or mod.fan_in_fan_out
            updates.setdefault(key, []).append(_Update(adapter, mod, strength, conv1d))
            if is_dense(mod) and strength != 1.0:
                notes.add("DoRA at strength s is merged as W + s·(W_DoRA − W), the linear reading of strength")
    if base.tied and any(k.endswith(("embed_tokens.weight", "wte.weight", "word_embeddings.weight"))
                         for k in updates):
        notes.add("the base ties lm_head to the embeddings, so merging an embedding update changes both")

    staging = prepare_output_dir(Path(out), sum(s.stat().st_size for s in ckpt.shards))
    try:
        shards = ckpt.shards
        names = [n for shard in shards for n in read_safetensors_header(shard)[0]]
        done, total = 0, len(names)
        for shard in shards:
            header, metadata, start = read_safetensors_header(shard)
            entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
            writer = SafetensorsWriter(staging / shard.name, [(k, v["dtype"], tuple(v["shape"])) for k, v in entries],
                                       metadata)
            fd = open(shard, "rb", buffering=0)      # plain reads: the base never becomes resident
            try:
                for key, info in entries:
                    ctx.check()
                    ctx.report(done, total, key)
                    begin, end = info["data_offsets"]
                    if key in updates:
                        if info["dtype"] not in FLOAT_DTYPES or len(info["shape"]) != 2:
                            raise MergeError(f"{shard}: tensor {key} ({info['dtype']}, {info['shape']}) cannot be merged")
                        writer.write(key, _merged(fd, start + begin, key, info, updates[key]))
                        result.touched.append(key)
                        result.types[key] = info["dtype"]
                    else:
                        writer.write(key, _read(fd, start + begin, end - begin))
                        result.copied += 1
                    done += 1
                writer.close()
            except BaseException:
                writer.abort()
                raise
            finally:
                fd.close()
        shard_names = {s.name for s in shards}
        for f in base_folder.iterdir():
            if f.name in shard_names or f.name.startswith("."):
                continue
            if f.is_file() and f.suffix in _STALE_WEIGHTS:
                notes.add(f"left out {f.name}: another copy of the unmerged weights")
                continue
            with writing(staging / f.name):
                if f.is_dir():
                    shutil.copytree(f, staging / f.name)
                else:
                    shutil.copy2(f, staging / f.name)
        finish_output_dir(staging, Path(out), overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        ckpt.close()
    ctx.report(total, total, "done")
    result.notes = sorted(notes)
    return result


def _merged(fd, offset: int, key: str, info: dict, updates: list[_Update]) -> bytes:
    dtype, shape = info["dtype"], tuple(info["shape"])
    rows, cols = shape
    width = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}[dtype]
    whole = None
    if any(is_dense(u.mod) for u in updates):
        whole = decode_from(_read(fd, offset, rows * cols * width), dtype, shape)
    for u in updates:
        u.prepare(whole)
    step = max(1, CHUNK_BYTES // (4 * cols))
    out = bytearray()
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        if whole is not None:
            chunk = whole[r0:r1].copy()
        else:
            chunk = decode_from(_read(fd, offset + r0 * cols * width, (r1 - r0) * cols * width), dtype,
                                (r1 - r0, cols)).copy()
        for u in updates:
            chunk += u.rows(r0, r1)
        try:
            require_fit(chunk, dtype)
        except ValuesDoNotFit as exc:
            remedy = ("the base model or an adapter is damaged" if exc.not_numbers
                      else f"lower the strengths (this model stores its weights as {dtype})")
            raise MergeError(f"merged tensor {key!r}: {exc}; {remedy}") from None
        out += encode_as(chunk, dtype)
    return bytes(out)
