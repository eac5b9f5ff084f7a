"""Adapters on a transformers model, each with its own strength, switched without touching the weights.

Every adapted module (nn.Linear, GPT-2 Conv1D, nn.Embedding) gets one forward hook that adds
Σᵢ sᵢ·fᵢ(layer)·Bᵢ(Aᵢx) for the active adapters, with (Aᵢ, Bᵢ) from `variants.lowrank` — exact for
LoRA, rsLoRA, rank/alpha patterns, AdaLoRA, LoHa and LoKr, whatever format the adapter came in.
Changing a strength changes one number; nothing is reloaded or re-merged.

DoRA uses LoRA Deck's linear strength, W + s·(W'(1) − W), the same definition the llama.cpp path
bakes into its GGUF: with D = m/‖W + cBA‖ per output row (precomputed once),
    Δy = s·[(D − 1)⊙(Wx) + D⊙c·B(Ax)]        and Wx = y − bias, so no extra matmul with W.
Column-axis DoRA (LyCORIS wd_on_out=False) and full replacement weights use a dense ΔW.

An activated LoRA (alora.py) acts only from a position on: `activation[key]` is that position (None:
nowhere in this prompt) and `offset` the position of the first token of the current forward pass, so
the hook adds its update to the later tokens of a chunk only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..core.adapter import Adapter, ModuleDelta
from ..errors import AdapterFormatError


@dataclass
class _Factor:
    adapter: str
    layer: int | None
    A: object                    # torch tensors on the model's device/dtype
    B: object
    dora: object = None          # D − 1 per output row (row-axis DoRA), or None
    dora_gain: object = None     # D per output row
    dense: object = None         # dense ΔW (out, in) for column DoRA / replacements


@dataclass
class _Slot:
    module: object
    kind: str                    # "linear" | "conv1d" | "embedding"
    factors: list[_Factor] = field(default_factory=list)
    handle: object = None


def _kind(module) -> str:
    import torch

    if isinstance(module, torch.nn.Embedding):
        return "embedding"
    if type(module).__name__ == "Conv1D":
        return "conv1d"
    if isinstance(module, torch.nn.Linear):
        return "linear"
    raise TypeError(type(module).__name__)


def _base_weight(module, kind: str) -> np.ndarray:
    w = module.weight.detach().float().cpu().numpy()
    return w.T if kind == "conv1d" else w      # (out, in) as the canonical form describes it


class AdapterBank:
    """Adapters attached to one model. `set_mix({name: (strength, layer_fn)})` chooses what acts."""

    def __init__(self, model):
        self.model = model
        self.slots: dict[str, _Slot] = {}
        self.mix: dict[str, tuple[float, object]] = {}
        self.adapters: dict[str, list[str]] = {}       # adapter key -> module names it touches
        self.skipped: dict[str, list[str]] = {}
        self.activation: dict[str, int | None] = {}    # aLoRA key -> first position it acts on (None: none)
        self.offset = 0                                # position of the current forward's first token

    def _tensor(self, x: np.ndarray, like):
        import torch
        return torch.from_numpy(np.array(x, dtype=np.float32, copy=True)).to(device=like.device, dtype=like.dtype)

    def add(self, key: str, adapter: Adapter) -> list[str]:
        """Attach an adapter under `key` (inactive until it is in the mix). Returns warnings."""
        from ..core.variants import dense_delta, lowrank

        if key in self.adapters:
            return []
        warnings, touched = [], []
        pending: list[tuple[str, _Factor, str]] = []
        for mod in adapter:
            try:
                module = self.model.get_submodule(mod.name)
                kind = _kind(module)
            except (AttributeError, TypeError):
                warnings.append(f"{mod.name}: no such linear or embedding module in this model; skipped")
                continue
            weight = module.weight
            try:
                factor = self._factor(key, adapter, mod, module, kind, weight, lowrank, dense_delta)
            except (ValueError, KeyError) as exc:
                raise AdapterFormatError(adapter.path, f"module {mod.name}: {exc}") from None
            if factor is None:
                warnings.append(f"{mod.name}: {mod.variant} update not applied by the PyTorch engine")
                continue
            pending.append((mod.name, factor, kind))
        if not pending:
            raise AdapterFormatError(adapter.path, "none of its modules exist in this model (wrong base model?)")
        for name, factor, kind in pending:     # attach only once everything is checked
            slot = self.slots.get(name)
            if slot is None:
                slot = self.slots[name] = _Slot(self.model.get_submodule(name), kind)
                slot.handle = slot.module.register_forward_hook(self._hook(slot))
            slot.factors.append(factor)
            touched.append(name)
        self.adapters[key] = touched
        self.skipped[key] = warnings
        return warnings

    def _factor(self, key, adapter, mod: ModuleDelta, module, kind, weight, lowrank, dense_delta):
        t = adapter.tensors(mod)
        expected = tuple(weight.shape) if kind != "conv1d" else tuple(weight.shape)[::-1]
        if mod.variant == "embedding":
            if kind != "embedding":
                raise ValueError("an embedding update on a non-embedding module")
            A, B = lowrank(mod, t)       # ΔE = B·A, B (vocab, r), A (r, dim)
            if (B.shape[0], A.shape[1]) != expected:
                raise ValueError(f"ΔE {(B.shape[0], A.shape[1])} does not fit the embedding {expected}")
            return _Factor(key, mod.layer, self._tensor(A, weight), self._tensor(B, weight))
        if kind == "embedding":
            return None
        if mod.variant in ("full", "bias"):
            if mod.variant == "bias":
                return None
            delta = dense_delta(mod, t, _base_weight(module, kind))
            return _Factor(key, mod.layer, None, None, dense=self._tensor(delta, weight))
        A, B = lowrank(mod, t)
        if (B.shape[0], A.shape[1]) != expected:
            raise ValueError(f"ΔW {(B.shape[0], A.shape[1])} does not fit the weight {expected}")
        dora = mod.variant == "dora" or bool(mod.extra.get("dora"))
        if not dora:
            return _Factor(key, mod.layer, self._tensor(A, weight), self._tensor(B, weight))
        if mod.dora_axis == "column":
            delta = dense_delta(mod, t, _base_weight(module, kind))
            return _Factor(key, mod.layer, None, None, dense=self._tensor(delta, weight))
        w = _base_weight(module, kind).astype(np.float64)
        norm = np.linalg.norm(w + np.asarray(B, np.float64) @ np.asarray(A, np.float64), axis=1)
        gain = np.asarray(t["magnitude"], np.float64).reshape(-1) / norm
        return _Factor(key, mod.layer, self._tensor(A, weight), self._tensor(B, weight),
                       dora=self._tensor(gain - 1.0, weight), dora_gain=self._tensor(gain, weight))

    def remove(self, key: str) -> None:
        for name in self.adapters.pop(key, []):
            slot = self.slots[name]
            slot.factors = [f for f in slot.factors if f.adapter != key]
            if not slot.factors:
                slot.handle.remove()
                del self.slots[name]
        self.mix.pop(key, None)
        self.skipped.pop(key, None)

    def set_mix(self, mix: dict[str, tuple[float, object]]) -> None:
        unknown = set(mix) - set(self.adapters)
        if unknown:
            raise KeyError(f"adapters not attached: {sorted(unknown)}")
        self.mix = {k: v for k, v in mix.items() if v[0] != 0.0}

    def close(self) -> None:
        for key in list(self.adapters):
            self.remove(key)

    def _hook(self, slot: _Slot):
        def hook(module, inputs, output):
            if not self.mix:
                return output
            x = inputs[0]
            extra = None
            for f in slot.factors:
                entry = self.mix.get(f.adapter)
                if entry is None:
                    continue
                strength, layer_fn = entry
                s = strength * (layer_fn(f.layer) if layer_fn is not None else 1.0)
                if s == 0.0:
                    continue
                first = 0
                if f.adapter in self.activation:          # an aLoRA: from its invocation on only
                    start = self.activation[f.adapter]
                    first = output.shape[-2] if start is None else start - self.offset
                    if first >= output.shape[-2]:
                        continue
                d = self._delta(slot, module, f, x, output)
                if first > 0:
                    d = d.clone()
                    d[..., :first, :] = 0
                extra = s * d if extra is None else extra + s * d
            return output if extra is None else output + extra.to(output.dtype)
        return hook

    @staticmethod
    def _delta(slot: _Slot, module, f: _Factor, x, output):
        if slot.kind == "embedding":
            return f.B[x] @ f.A
        x = x.to(f.A.dtype if f.A is not None else f.dense.dtype)
        if f.dense is not None:
            return x @ f.dense.T
        lora = (x @ f.A.T) @ f.B.T
        if f.dora is None:
            return lora
        bias = getattr(module, "bias", None)
        wx = output if bias is None else output - bias
        return f.dora * wx.to(lora.dtype) + f.dora_gain * lora
