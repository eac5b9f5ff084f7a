"""Derived llama.cpp LoRA files with every factor folded into B: per-layer strengths and fused mixes.

llama.cpp scales each adapter by one number, strength·alpha/rank (REFERENCE §1.2, §7.3). A file whose
B already holds every factor (alpha/rank, a per-layer factor, even the strength) and whose alpha is 0
is applied by llama.cpp with exactly the runtime scale given. Several adapters fold into ONE file by
stacking their factors along the rank: A' = [A₁; A₂; …], B' = [c₁B₁, c₂B₂, …], so B'A' = Σ cᵢBᵢAᵢ
exactly. llama.cpp's cost grows with the number of adapters far more than with rank, so a fused mix
decodes almost as fast as a single adapter.

The source files are read by the GGUF format plugin (the one LoRA-GGUF reader), in GGUF space: each
module names its GGUF tensor pair, and the raw tensors keep llama.cpp's layout and row order.
Orientation (numpy order): a (…, r, in), b (…, out, r); token_embd a (vocab, r), b (dim, r); MoE
experts add a leading n_expert axis. The rank is b's last axis; for a it is axis -2, except token_embd.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import AdapterFormatError, JobCancelled
from ..value_range import require_fit

_BLOCK = re.compile(r"^blk\.(\d+)\.")


def block_index(tensor_name: str) -> int | None:
    m = _BLOCK.match(tensor_name)
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class FoldPart:
    """One source adapter of a folded file: every B multiplied by strength·(alpha/rank)·layer factor."""

    path: Path
    strength: float = 1.0
    layer_factor: Callable[[int | None], float] = lambda layer: 1.0


@dataclass(frozen=True)
class _Pair:
    name: str                  # base tensor, "blk.0.attn_q.weight"
    scale: float               # alpha/rank (1 without alpha)
    a_shape: tuple[int, ...]
    b_shape: tuple[int, ...]
    half: bool                 # stored in 16 bits or less


def read_pairs(adapter) -> dict[str, _Pair]:
    """The LoRA tensor pairs of a GGUF adapter read by the GGUF plugin, by base tensor name."""
    pairs: dict[str, _Pair] = {}
    for mod in adapter:
        name = mod.extra.get("gguf_tensor") if mod.extra else None
        if name is None:
            raise AdapterFormatError(adapter.path, "not a llama.cpp LoRA GGUF (no GGUF tensor names)")
        if name in pairs:
            continue           # the other experts of a stacked pair
        a_key, b_key = name + ".lora_a", name + ".lora_b"
        src = adapter.source
        half = src.dtype(a_key) != "F32" or src.dtype(b_key) != "F32"
        pairs[name] = _Pair(name, mod.scale, tuple(src.shape(a_key)), tuple(src.shape(b_key)), half)
    return pairs


def write_folded(out: Path, parts: Sequence[FoldPart], *, name: str = "",
                 cancelled: Callable[[], bool] | None = None,
                 keep_f32: Callable[[str], bool] | None = None, f32: bool = False) -> Path:
    """Write ONE LoRA GGUF (alpha 0) equal to Σ parts: factors stacked along the rank, all scales in B.

    Tensors go to disk one at a time (memory stays at one tensor's worth) and the file is published
    atomically (gguf.writer). Output is F16 wherever a source stores that tensor in 16 bits or less, or
    `keep_f32(base tensor)` says False (e.g. the base weight itself is F16 or quantized: the LoRA's cost
    is mostly reading its factors, and F16 halves that); F32 otherwise, and everywhere with `f32`.
    ValuesDoNotFit (nothing written) when a factor, its strength folded in, is past float16's range.
    """
    import gguf

    from ..formats.registry import read_adapter
    from ..gguf.tensors import nbytes_of
    from ..gguf.writer import DeclaredGGUFWriter

    adapters = [read_adapter(Path(p.path), format_id="gguf") for p in parts]
    try:
        files = [read_pairs(a) for a in adapters]
        archs = {a.metadata.get("general.architecture") for a in adapters}
        if len(archs) != 1:
            raise AdapterFormatError(out, "cannot fuse adapters made for different architectures")
        arch = archs.pop() or ""

        # Plan: per base tensor, the contributing (part index, factor) in order.
        plan: dict[str, list[tuple[int, float]]] = {}
        for i, (part, pairs) in enumerate(zip(parts, files)):
            for base, pair in pairs.items():
                factor = part.strength * pair.scale * part.layer_factor(block_index(base))
                if factor != 0.0:
                    plan.setdefault(base, []).append((i, factor))

        with DeclaredGGUFWriter(out, arch) as w:
            w.kv.add_type(gguf.GGUFType.ADAPTER)
            w.kv.add_string(gguf.Keys.Adapter.TYPE, "lora")
            w.kv.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 0.0)
            if name:
                w.kv.add_name(name)
            types = {}
            for base, contrib in plan.items():
                half = not f32 and (any(files[i][base].half for i, _ in contrib)
                                    or (keep_f32 is not None and not keep_f32(base)))
                qtype = gguf.GGMLQuantizationType.F16 if half else gguf.GGMLQuantizationType.F32
                types[base] = qtype
                a_shape, b_shape = _stacked_shapes(base, [files[i][base] for i, _ in contrib])
                w.declare(base + ".lora_a", a_shape, qtype, nbytes_of(a_shape, qtype))
                w.declare(base + ".lora_b", b_shape, qtype, nbytes_of(b_shape, qtype))
            w.begin()
            for base, contrib in plan.items():
                if cancelled is not None and cancelled():
                    raise JobCancelled("cancelled")
                dtype = np.float16 if types[base] == gguf.GGMLQuantizationType.F16 else np.float32
                a_axis = -1 if base == "token_embd.weight" else -2
                a_parts = [adapters[i].source.read(base + ".lora_a") for i, _ in contrib]
                b_parts = [adapters[i].source.read(base + ".lora_b") * np.float32(f) for i, f in contrib]
                for part, values in (("lora_a", np.concatenate(a_parts, axis=a_axis)),
                                     ("lora_b", np.concatenate(b_parts, axis=-1))):
                    require_fit(values, types[base].name, f"{base}.{part}")   # past it: infinities in F16
                    w.write(f"{base}.{part}", np.ascontiguousarray(values, dtype))
            w.commit()
    finally:
        for a in adapters:
            close = getattr(a.source, "close", None)
            if close is not None:
                close()
    return Path(out)


def _stacked_shapes(base: str, pairs: list[_Pair]) -> tuple[list[int], list[int]]:
    r_total = sum(p.b_shape[-1] for p in pairs)
    a_shape, b_shape = list(pairs[0].a_shape), list(pairs[0].b_shape)
    a_shape[-1 if base == "token_embd.weight" else -2] = r_total
    b_shape[-1] = r_total
    return a_shape, b_shape
