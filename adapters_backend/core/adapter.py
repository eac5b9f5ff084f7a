"""The canonical in-memory form every format plugin reads adapters into.

An `Adapter` is a set of `ModuleDelta`s, one per adapted module of the base model, named with the
base model's own dotted module path (`model.layers.3.self_attn.q_proj`). Tensors stay on disk until
asked for: `Adapter.tensors(module)` reads only that module's tensors from its `TensorSource`.

Orientation convention: every ΔW is in the layout of the base module's *weight* as PyTorch stores it
for `nn.Linear`, i.e. (out_features, in_features). GPT-2 `Conv1D` modules (weight stored (in, out))
are described in Linear orientation too, flagged `fan_in_fan_out=True`. Embeddings use
(num_embeddings, embedding_dim), the `nn.Embedding.weight` layout.

The variant math (how ΔW follows from the stored tensors) lives in `variants.py`.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

# Kinds of module update an adapter can carry.
#   lora       ΔW = scale·B·A                          roles: A (r,in), B (out,r) [, bias (out,)]
#   dora       W' = m/‖W+scale·BA‖ ⊙ (W+scale·BA)      roles: A, B, magnitude (out,)   (not low-rank)
#   adalora    ΔW = scale·B·diag(E)·A                  roles: A, E (r,1), B
#   loha       ΔW = scale·(w1a·w1b) ⊙ (w2a·w2b)        roles: w1a, w1b, w2a, w2b
#   lokr       ΔW = scale·kron(w1, w2)                 roles: w1 | (w1a, w1b); w2 | (w2a, w2b)
#   embedding  ΔE = scale·(B·A)ᵀ                       roles: A (r,vocab), B (dim,r)   (PEFT lora_embedding_*)
#   full       W' = weight (replacement, modules_to_save / saved embeddings)   roles: weight [, bias]
#   bias       b' = bias (replacement bias, PEFT bias="all"/"lora_only")       roles: bias
# Any variant may add "dora_magnitude" semantics via variant "dora" (LoRA) or the `dora` flag below
# for LyCORIS-style LoHa/LoKr with dora_scale.
VARIANTS = ("lora", "dora", "adalora", "loha", "lokr", "embedding", "full", "bias")
LOW_RANK_VARIANTS = ("lora", "adalora", "loha", "lokr", "embedding")

_LAYER_RE = re.compile(r"\.(\d{1,9})\.")     # longer digit runs are no block index


def layer_index(module_name: str) -> int | None:
    """The block index in a module path (`model.layers.12.mlp.up_proj` → 12), or None."""
    m = _LAYER_RE.search(f".{module_name}.")
    return int(m.group(1)) if m else None


@dataclass(frozen=True)
class ModuleDelta:
    """One adapted module: what kind of update, its size, and where its tensors are stored."""

    name: str                          # base module path, e.g. "model.layers.0.self_attn.q_proj"
    variant: str                       # one of VARIANTS
    out_features: int                  # rows of ΔW (Linear orientation; vocab size for embeddings)
    in_features: int                   # columns of ΔW
    rank: int                          # r of the low-rank form (0 for full/bias)
    alpha: float | None                # the alpha the file states for this module (None if none)
    scale: float                       # effective factor c applied to the stored product (strength 1)
    roles: Mapping[str, str]           # role ("A", "B", "magnitude", …) -> tensor key in the source
    dtype: str = "F32"                 # storage dtype of the factors ("F32", "F16", "BF16")
    fan_in_fan_out: bool = False       # base weight is stored (in, out) (GPT-2 Conv1D)
    dora_axis: str = "row"             # DoRA norm axis: "row" (PEFT, LyCORIS wd_on_out) or "column"
    extra: Mapping[str, object] = field(default_factory=dict)  # format-specific facts (e.g. rslora)

    @property
    def layer(self) -> int | None:
        return layer_index(self.name)

    @property
    def short_name(self) -> str:
        """The last path component (`q_proj`), what PEFT's target_modules lists."""
        return self.name.rsplit(".", 1)[-1]

    @property
    def is_low_rank(self) -> bool:
        return self.variant in LOW_RANK_VARIANTS


class TensorSource(Protocol):
    """Where an adapter's tensors live. Reads one tensor at a time, as float32 numpy arrays."""

    def keys(self) -> list[str]: ...
    def shape(self, key: str) -> tuple[int, ...]: ...
    def dtype(self, key: str) -> str: ...
    def read(self, key: str) -> np.ndarray: ...


@dataclass
class Adapter:
    """A whole adapter in canonical form. Build with a format reader, not by hand."""

    path: Path
    format_id: str                                  # plugin format id, e.g. "peft", "kohya"
    modules: dict[str, ModuleDelta]                 # keyed by module name, in file order
    source: TensorSource
    base_model: str | None = None                   # as declared by the adapter (Hub id or path)
    architecture: str | None = None                 # architecture id guessed from the adapter, if any
    config: dict = field(default_factory=dict)      # the format's own config, as read
    metadata: dict = field(default_factory=dict)    # free-form facts (task type, trainer, licence…)
    warnings: list[str] = field(default_factory=list)
    task_name: str | None = None

    def __iter__(self) -> Iterator[ModuleDelta]:
        return iter(self.modules.values())

    def __len__(self) -> int:
        return len(self.modules)

    @property
    def variants(self) -> list[str]:
        seen: dict[str, None] = {}
        for m in self.modules.values():
            seen[m.variant] = None
        return list(seen)

    @property
    def alora_invocation_tokens(self) -> list[int] | None:
        """An activated LoRA's invocation tokens (PEFT `alora_invocation_tokens`, GGUF
        `adapter.alora.invocation_tokens`): it acts only from their last occurrence on. None: a LoRA."""
        tokens = self.config.get("alora_invocation_tokens") if isinstance(self.config, dict) else None
        return [int(t) for t in tokens] if tokens else None

    def tensors(self, module: ModuleDelta | str) -> dict[str, np.ndarray]:
        """Read one module's tensors (float32), keyed by role."""
        mod = self.modules[module] if isinstance(module, str) else module
        return {role: self.source.read(key) for role, key in mod.roles.items()}

    def close(self) -> None:
        """Let go of the files the tensors are read from (a later read opens them again): a reader
        that opened the adapter itself closes it when done, also when it failed half-way, instead of
        leaving the file open until garbage collection (on Windows an open file cannot be deleted)."""
        close = getattr(self.source, "close", None)
        if callable(close):
            close()

    def parameter_count(self) -> int:
        total = 0
        for mod in self.modules.values():
            for key in mod.roles.values():
                total += int(np.prod(self.source.shape(key), dtype=np.int64))
        return total
