"""Where each adapter module lands in a GGUF base: the plan `convert` and `merge` follow.

A `Target` is one GGUF tensor of the base ("blk.0.attn_qkv") and the adapter modules that update it,
each as a `Piece`:

    direct   the module is the tensor (the usual case; rows reordered by the rule's transform).
    packed   the module is one row block of a fused GGUF tensor (separate q/k/v → attn_qkv of a base
             converted with --fuse-qkv): its B fills rows [row0, row0+rows) of the target, zeros elsewhere.
    split    the module is fused in HF but the base stores its row blocks as separate tensors: the
             target takes rows [src0, src0+rows) of the module's (transformed) B.

Row transforms act on B's rows only (permute(B·A) = permute(B)·A), so every case stays exact.
Modules that cannot land anywhere get a reason instead (`Plan.skipped`), never silence.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..arch.name_map import gguf_tensor_name
from ..core.adapter import Adapter, ModuleDelta
from ..core.base_model import BaseModelInfo

_FULL = ("a full replacement tensor ({what}), not a low-rank update: a llama.cpp LoRA cannot carry it "
         "(use `loradeck merge` to bake it into the model)")


@dataclass(frozen=True)
class Piece:
    module: ModuleDelta
    how: str                  # "direct" | "packed" | "split"
    transform: str = "none"   # row transform applied to the module's B (HF → GGUF row order)
    row0: int = 0             # packed: first row of the target this module fills
    src0: int = 0             # split: first row of the module's B this target takes
    rows: int = 0             # packed/split: number of rows


@dataclass
class Target:
    gguf: str                         # base tensor name without ".weight"
    shape: tuple[int, ...]            # base tensor shape (numpy order: (out, in); embeddings (vocab, dim))
    kind: str                         # "linear" | "embedding"
    pieces: list[Piece] = field(default_factory=list)

    @property
    def name(self) -> str:
        return gguf_tensor_name(self.gguf)


@dataclass
class Plan:
    targets: dict[str, Target]                       # by GGUF name, in base tensor order
    skipped: dict[str, str]                          # module name -> why it is not converted

    def warnings(self) -> list[str]:
        return [f"skipped {name}: {why}" for name, why in self.skipped.items()]


def _rows(base: BaseModelInfo, key: str, total: int, n_parts: int) -> int:
    return base.rows(key) if key else total // n_parts


def plan_targets(adapter: Adapter, base: BaseModelInfo, allow_full: bool = False, runtime: bool = True) -> Plan:
    """Map every module of `adapter` onto the GGUF tensors of `base` (a GGUF file or an HF folder,
    described by its would-be GGUF tensors). `allow_full` keeps full/bias replacements; `runtime=False`
    (merge) lifts the limits of llama.cpp's runtime LoRA (a tied token_embd)."""
    targets: dict[str, Target] = {}
    skipped: dict[str, str] = {}
    nm = base.name_map

    def target(gguf: str, kind: str) -> Target:
        if gguf not in targets:
            targets[gguf] = Target(gguf, tuple(base.gguf_shape(gguf)), kind)
        return targets[gguf]

    for mod in adapter:
        if mod.variant == "bias" or (mod.variant == "full" and not allow_full):
            what = "bias" if mod.variant == "bias" else "modules_to_save / saved embedding"
            skipped[mod.name] = (_FULL.format(what=what) if runtime
                                 else "a replacement bias; merging biases is not supported yet")
            continue
        m = base.match(mod.name)
        if m is None:
            skipped[mod.name] = (f"no GGUF tensor is known for this module in "
                                 f"{base.arch.name if base.arch else base.arch_name}")
            continue
        rule = m.rule
        if not rule.runtime or not m.gguf:
            skipped[mod.name] = rule.reason or "llama.cpp has no tensor for this module"
            continue
        kind = "embedding" if rule.kind == "embedding" else "linear"
        if runtime and kind == "embedding" and base.tied and m.gguf == "token_embd":
            # llama.cpp looks LoRAs up by tensor: a tied model's output projection *is* token_embd, so it
            # would apply the embedding-shaped LoRA to the output matmul too and abort (GGML_ASSERT).
            skipped[mod.name] = ("the base ties its output layer to token_embd, and llama.cpp would apply this "
                                 "LoRA to the output projection too (it aborts on the shape mismatch); "
                                 "use `loradeck merge` to bake it in")
            continue
        if rule.kind in ("expert", "experts"):
            skipped[mod.name] = "mixture-of-experts tensors are not converted yet"
            continue
        if base.has_gguf_tensor(m.gguf):
            shape = base.gguf_shape(m.gguf)
            want = (mod.out_features, mod.in_features)
            if tuple(shape) != want:
                skipped[mod.name] = f"shape: adapter {want[0]}×{want[1]}, base tensor {m.gguf} {shape}"
                continue
            target(m.gguf, kind).pieces.append(Piece(mod, "direct", rule.transform))
            continue
        if rule.hf == "lm_head" and base.tied:
            skipped[mod.name] = ("the base ties lm_head to the token embeddings, so it has no 'output' tensor "
                                 "for a LoRA to attach to")
            continue
        container = nm.fused_containing(m.gguf) if nm else None
        if container is not None and base.has_gguf_tensor(container[0]):
            fused, index, parts = container
            shape = base.gguf_shape(fused)
            sizes = [_rows(base, key, shape[0], len(parts)) for _, key in parts]
            if sum(sizes) != shape[0] or sizes[index] != mod.out_features or shape[1] != mod.in_features:
                skipped[mod.name] = f"does not fit its block of the fused tensor {fused} {tuple(shape)}"
                continue
            target(fused, kind).pieces.append(
                Piece(mod, "packed", rule.transform, row0=sum(sizes[:index]), rows=sizes[index]))
            continue
        parts = nm.fused_parts(m.gguf) if nm else None
        if parts and all(base.has_gguf_tensor(p) for p, _ in parts):
            shapes = [base.gguf_shape(p) for p, _ in parts]
            if sum(s[0] for s in shapes) != mod.out_features or any(s[1] != mod.in_features for s in shapes):
                skipped[mod.name] = f"its rows do not split onto {', '.join(p for p, _ in parts)}"
                continue
            start = 0
            for (p, _), s in zip(parts, shapes):
                target(p, kind).pieces.append(Piece(mod, "split", rule.transform, src0=start, rows=s[0]))
                start += s[0]
            continue
        skipped[mod.name] = f"the base model has no tensor {gguf_tensor_name(m.gguf)}"

    order = {n.removesuffix(".weight"): i for i, n in enumerate(base.tensor_shapes)} if base.kind == "gguf" else {}
    ordered = dict(sorted(targets.items(), key=lambda kv: order.get(kv[0], len(order))))
    return Plan(ordered, skipped)
