"""llama.cpp LoRA GGUF files in numpy: read their header, check them against a base model, and write
derived adapters with factors folded into B.

Folding (REFERENCE §1.2, §7.3): llama.cpp scales each adapter by one number, strength·alpha/rank. A
file whose B already holds every factor (alpha/rank, a per-layer factor, even the strength) and whose
alpha is 0 is applied by llama.cpp with exactly the runtime scale given. Several adapters fold into
ONE file by stacking their factors along the rank: A' = [A₁; A₂; …], B' = [c₁B₁, c₂B₂, …], so
B'A' = Σ cᵢBᵢAᵢ exactly. llama.cpp's cost grows with the number of adapters far more than with rank,
so a fused mix decodes almost as fast as a single adapter.

Orientation (GGUF `ne` order, numpy shape reversed): ordinary tensors a=[in, r], b=[r, out];
token_embd a=[r, n_vocab], b=[r, n_embd]; MoE experts add a trailing n_expert dimension. The rank is
always b's ne[0] (numpy axis -1); for a it is numpy axis -2, except token_embd (axis -1).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import AdapterFormatError, BaseModelError, JobCancelled
from ..gguf.header import GGUFHeader, ggml_type_name, read_gguf_header

GGUF_MAGIC = b"GGUF"
_BLOCK_RE = re.compile(r"^blk\.(\d{1,9})\.")
_PLAIN_FLOATS = {"F32": np.float32, "F16": np.float16}


def is_gguf(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def block_index(tensor_name: str) -> int | None:
    m = _BLOCK_RE.match(tensor_name)
    return int(m.group(1)) if m else None


def _reader(path: Path, error_cls):
    """gguf-py's reader (for tensor data of small adapter files)."""
    import gguf
    try:
        return gguf.GGUFReader(path)
    except Exception as exc:  # noqa: BLE001 - gguf-py raises many kinds on junk
        raise error_cls(path, "not a readable GGUF file: it is damaged or incomplete "
                              f"({type(exc).__name__}: {exc})") from exc


def _header(path: Path, error_cls) -> GGUFHeader:
    try:
        return read_gguf_header(path)
    except (ValueError, OSError) as exc:
        raise error_cls(path, f"not a readable GGUF file: it is damaged or incomplete ({exc})") from exc


@dataclass(frozen=True)
class LoraPair:
    base_name: str                     # the base tensor, e.g. "blk.0.attn_q.weight"
    a_ne: tuple[int, ...]
    b_ne: tuple[int, ...]
    a_type: str                        # GGML type name of the stored data ("F32", "F16", "BF16", "Q8_0")
    b_type: str

    @property
    def rank(self) -> int:
        return int(self.b_ne[0])

    @property
    def layer(self) -> int | None:
        return block_index(self.base_name)


@dataclass(frozen=True)
class LoraFile:
    path: Path
    architecture: str
    alpha: float                       # 0 = no alpha/rank scaling
    pairs: dict[str, LoraPair]
    general_type: str

    def scale(self, pair: LoraPair) -> float:
        """llama.cpp's factor for a pair at strength 1 (src/llama-adapter.h get_scale)."""
        return self.alpha / pair.rank if self.alpha else 1.0


def read_lora_header(path: Path) -> LoraFile:
    """Tensor list and metadata of a LoRA GGUF; AdapterFormatError names the problem."""
    path = Path(path)
    if not is_gguf(path):
        raise AdapterFormatError(path, "not a GGUF file (no GGUF magic at the start)")
    head = _header(path, AdapterFormatError)
    meta = head.metadata
    gtype = str(meta.get("general.type", "") or "")
    if gtype != "adapter":
        raise AdapterFormatError(path, "this GGUF is a model, not a LoRA adapter (general.type is "
                                       f"{gtype or 'missing'})")
    atype = str(meta.get("adapter.type", "") or "")
    if atype != "lora":
        raise AdapterFormatError(path, f"unsupported GGUF adapter type {atype or 'missing'!r} (only 'lora')")
    arch = str(meta.get("general.architecture", "") or "")
    try:
        alpha = float(meta.get("adapter.lora.alpha", 0.0) or 0.0)
    except (TypeError, ValueError):
        raise AdapterFormatError(path, "adapter.lora.alpha is not a number") from None
    halves: dict[str, dict[str, tuple]] = {}
    for name, info in head.tensors.items():
        for suffix in ("a", "b"):
            if name.endswith(f".lora_{suffix}"):
                halves.setdefault(name[: -len(".lora_a")], {})[suffix] = info
    pairs = {}
    for base, d in halves.items():
        if set(d) != {"a", "b"}:
            raise AdapterFormatError(path, f"LoRA tensor pair for {base!r} is missing one half")
        (a_ne, a_type), (b_ne, b_type) = d["a"], d["b"]
        if len(a_ne) < 2 or len(b_ne) < 2:
            raise AdapterFormatError(path, f"LoRA tensors of {base!r} are not matrices")
        pairs[base] = LoraPair(base, a_ne, b_ne, ggml_type_name(a_type), ggml_type_name(b_type))
    if not pairs:
        raise AdapterFormatError(path, "the adapter has no LoRA tensors (.lora_a/.lora_b)")
    return LoraFile(path, arch, alpha, pairs, gtype)


@dataclass(frozen=True)
class BaseShapes:
    """What adapter checks need from a base GGUF: its architecture, blocks and tensor shapes (ne)."""

    path: Path
    architecture: str
    n_layers: int
    tensors: dict[str, tuple[int, ...]]
    general_type: str
    types: dict[str, str] = field(default_factory=dict)    # tensor -> GGML type name ("F16", "Q4_K", …)

    def full_precision(self, name: str) -> bool:
        """True when the base stores this tensor as F32 (a fused LoRA for it is then kept in F32 too)."""
        return self.types.get(name, "F32") == "F32"


def read_base_shapes(path: Path) -> BaseShapes:
    path = Path(path)
    if not path.exists():
        raise BaseModelError(path, "file not found")
    if not path.is_file():
        raise BaseModelError(path, "not a file (a GGUF model is one .gguf file)")
    if not is_gguf(path):
        raise BaseModelError(path, "not a GGUF file (no GGUF magic at the start); the llama.cpp engine "
                                   "needs a .gguf model")
    head = _header(path, BaseModelError)
    meta = head.metadata
    arch = str(meta.get("general.architecture", "") or "")
    gtype = str(meta.get("general.type", "model") or "model")
    try:
        n_layers = int(meta.get(f"{arch}.block_count", 0) or 0)
    except (TypeError, ValueError):
        n_layers = 0
    tensors = {name: ne for name, (ne, _t) in head.tensors.items()}
    types = {name: ggml_type_name(t) for name, (_ne, t) in head.tensors.items()}
    return BaseShapes(path, arch, n_layers, tensors, gtype, types)


def compatibility_problems(lora: LoraFile, base: BaseShapes, limit: int = 3) -> list[str]:
    """Why llama.cpp would refuse this adapter on this base (empty when it fits), in plain words."""
    if lora.architecture != base.architecture:
        return [f"it was made for the '{lora.architecture or 'unknown'}' architecture, but the loaded model "
                f"is '{base.architecture}'"]
    problems: list[str] = []
    missing = [n for n in lora.pairs if n not in base.tensors and not n.endswith("_norm.weight")]
    if missing:
        problems.append(f"{len(missing)} of its tensors do not exist in the model (e.g. {missing[0]}); "
                        "it belongs to another model")
    for name, p in lora.pairs.items():
        w = base.tensors.get(name)
        if w is None or len(problems) >= limit or name.endswith("_norm.weight"):   # llama.cpp skips norms
            continue
        if len(w) < 2:
            problems.append(f"tensor {name} is not a matrix in the model, so a LoRA cannot apply to it")
            continue
        if name == "token_embd.weight":
            ok = w[0] == p.b_ne[1] and w[1] == p.a_ne[1]
        else:
            ok = w[0] == p.a_ne[0] and w[1] == p.b_ne[1]
        if not ok or p.a_ne[1 if name != "token_embd.weight" else 0] != p.b_ne[0]:
            problems.append(f"tensor {name} has shape a={list(p.a_ne)} b={list(p.b_ne)}, which does not fit the "
                            f"model's {list(w)}; the adapter was made for a model of another size")
    return problems


def _tensor_data(t) -> np.ndarray:
    """A tensor's values as a float array in numpy layout (F32/F16 as stored, others dequantized)."""
    name = t.tensor_type.name
    if name in _PLAIN_FLOATS:
        return np.asarray(t.data)
    import gguf
    return gguf.quants.dequantize(t.data, t.tensor_type)


@dataclass(frozen=True)
class FoldPart:
    """One source adapter of a folded file: every B multiplied by strength·(alpha/rank)·layer factor."""

    path: Path
    strength: float = 1.0
    layer_factor: Callable[[int | None], float] = lambda layer: 1.0


def write_folded(out: Path, parts: Sequence[FoldPart], *, name: str = "",
                 cancelled: Callable[[], bool] | None = None,
                 keep_f32: Callable[[str], bool] | None = None) -> Path:
    """Write ONE LoRA GGUF (alpha 0) equal to Σ parts: factors stacked along the rank, all scales in B.

    Tensors go to disk one at a time (memory stays at one tensor's worth), into `<out>.incomplete`,
    renamed at the end. Output is F16 wherever a source stores that tensor in 16 bits or less, or
    `keep_f32(base tensor)` says False (e.g. the base weight itself is F16 or quantized: the LoRA's
    cost is mostly reading its factors, and F16 halves that); F32 otherwise.
    """
    import gguf

    out = Path(out)
    readers, files = [], []
    for part in parts:
        files.append(read_lora_header(part.path))
        readers.append({t.name: t for t in _reader(part.path, AdapterFormatError).tensors})
    arch = files[0].architecture
    if any(f.architecture != arch for f in files):
        raise AdapterFormatError(out, "cannot fuse adapters made for different architectures")

    # Plan: per base tensor, the contributing (part index, factor) in order.
    plan: dict[str, list[tuple[int, float]]] = {}
    for i, (part, lf) in enumerate(zip(parts, files)):
        for base, pair in lf.pairs.items():
            factor = part.strength * lf.scale(pair) * part.layer_factor(pair.layer)
            if factor != 0.0:
                plan.setdefault(base, []).append((i, factor))

    tmp = out.with_name(out.name + ".incomplete")
    w = gguf.GGUFWriter(str(tmp), arch)
    try:
        w.add_type(gguf.GGUFType.ADAPTER)
        w.add_string(gguf.Keys.Adapter.TYPE, "lora")
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)
        if name:
            w.add_name(name)
        shapes = {}
        for base, contrib in plan.items():
            half16 = any(files[i].pairs[base].a_type != "F32" or files[i].pairs[base].b_type != "F32"
                         for i, _ in contrib) or (keep_f32 is not None and not keep_f32(base))
            dtype = np.float16 if half16 else np.float32
            a_axis = -1 if base == "token_embd.weight" else -2
            r_total = sum(files[i].pairs[base].rank for i, _ in contrib)
            first = files[contrib[0][0]].pairs[base]
            a_shape = list(reversed(first.a_ne))          # numpy order
            b_shape = list(reversed(first.b_ne))
            a_shape[a_axis] = r_total
            b_shape[-1] = r_total
            shapes[base] = (dtype, a_shape, b_shape)
            itemsize = np.dtype(dtype).itemsize
            w.add_tensor_info(base + ".lora_a", a_shape, np.dtype(dtype), int(np.prod(a_shape)) * itemsize)
            w.add_tensor_info(base + ".lora_b", b_shape, np.dtype(dtype), int(np.prod(b_shape)) * itemsize)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        for base, contrib in plan.items():
            if cancelled is not None and cancelled():
                raise JobCancelled("cancelled")
            dtype, _a_shape, _b_shape = shapes[base]
            a_axis = -1 if base == "token_embd.weight" else -2
            a_parts = [_tensor_data(readers[i][base + ".lora_a"]).astype(np.float32) for i, _ in contrib]
            b_parts = [_tensor_data(readers[i][base + ".lora_b"]).astype(np.float32) * np.float32(f)
                       for i, f in contrib]
            w.write_tensor_data(np.ascontiguousarray(np.concatenate(a_parts, axis=a_axis), dtype))
            w.write_tensor_data(np.ascontiguousarray(np.concatenate(b_parts, axis=-1), dtype))
        w.close()
        os.replace(tmp, out)
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise
    return out
