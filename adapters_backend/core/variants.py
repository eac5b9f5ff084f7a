"""The update each adapter variant makes to its base module, from the canonical roles.

    lowrank(mod, tensors)        -> (A (r', in), B (out, r'))  with ΔW = B·A exactly, scale folded into B
    dense_delta(mod, tensors, W) -> ΔW (out, in)                 exact, for variants that need the base weight

Every low-rank variant (LoRA, rsLoRA, patterns, AdaLoRA, LoHa, LoKr, embeddings) is a product of two
factors; LoHa and LoKr become one through the face-splitting and mixed Kronecker products, so
nothing is approximated. DoRA (and LyCORIS `dora_scale`) rescales whole rows of W + ΔW and is not
low-rank: its ΔW needs the base weight.

Orientation: W and ΔW are (out, in) as `nn.Linear.weight` stores them (Conv1D modules are described
in this orientation too); embeddings are (vocab, dim).
"""
from __future__ import annotations

import numpy as np

from .adapter import ModuleDelta

ADALORA_EPS = 1e-5   # PEFT divides AdaLoRA's scaling by (ranknum + 1e-5); keep it to match exactly


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _split(t: dict, full: str, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    """A LoKr factor as U·V: (a, b) when stored decomposed, else the cheaper of I·W and W·I."""
    if full in t:
        w = _f32(t[full])
        if w.ndim != 2:
            raise ValueError(f"LoKr factor '{full}' must be 2-D, got shape {w.shape}")
        if w.shape[0] <= w.shape[1]:
            return np.eye(w.shape[0], dtype=np.float32), w
        return w, np.eye(w.shape[1], dtype=np.float32)
    return _f32(t[a]), _f32(t[b])


def lowrank(mod: ModuleDelta, t: dict) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) with ΔW = B·A at strength 1 (the module's scale is folded into B)."""
    c = np.float32(mod.scale)
    v = mod.variant
    if v in ("lora", "dora"):
        return _f32(t["A"]), _f32(t["B"]) * c
    if v == "adalora":
        e = _f32(t["E"]).reshape(-1, 1)
        return _f32(t["A"]) * e, _f32(t["B"]) * c
    if v == "embedding":
        # PEFT: ΔE = c·(B_p·A_p)ᵀ with A_p (r, vocab), B_p (dim, r) → ΔE = (c·A_pᵀ)·B_pᵀ
        return np.ascontiguousarray(_f32(t["B"]).T), np.ascontiguousarray(_f32(t["A"]).T) * c
    if v == "loha":
        w1a, w1b, w2a, w2b = (_f32(t[k]) for k in ("w1a", "w1b", "w2a", "w2b"))
        out, inp = w1a.shape[0], w1b.shape[1]
        r1, r2 = w1b.shape[0], w2b.shape[0]
        B = np.einsum("ip,iq->ipq", w1a, w2a).reshape(out, r1 * r2) * c
        A = np.einsum("pj,qj->pqj", w1b, w2b).reshape(r1 * r2, inp)
        return A, B
    if v == "lokr":
        u1, v1 = _split(t, "w1", "w1a", "w1b")
        u2, v2 = _split(t, "w2", "w2a", "w2b")
        return np.kron(v1, v2), np.kron(u1, u2) * c
    raise ValueError(f"{mod.name}: a {v} update is not a low-rank product")


def _dora(mod: ModuleDelta, magnitude: np.ndarray, merged: np.ndarray) -> np.ndarray:
    """m/‖W+ΔW‖ ⊙ (W+ΔW), the norm per output row (PEFT, LyCORIS wd_on_out) or per input column."""
    w = np.asarray(merged, dtype=np.float64)
    m = np.asarray(magnitude, dtype=np.float64)
    if mod.dora_axis == "column":
        norm = np.linalg.norm(w, axis=0, keepdims=True)
        return w * (m.reshape(1, -1) / norm)
    norm = np.linalg.norm(w, axis=1, keepdims=True)
    return w * (m.reshape(-1, 1) / norm)


def dense_delta(mod: ModuleDelta, t: dict, base_weight: np.ndarray) -> np.ndarray:
    """Exact ΔW at strength 1 for any additive or DoRA-style module, given its base weight (out, in)."""
    w = np.asarray(base_weight, dtype=np.float64)
    if mod.variant == "full":
        return _f32(t["weight"]) - w.astype(np.float32)
    A, B = lowrank(mod, t)
    delta = np.asarray(B, np.float64) @ np.asarray(A, np.float64)
    if delta.shape != w.shape:
        raise ValueError(f"{mod.name}: ΔW {delta.shape} does not fit the base weight {w.shape}")
    if mod.variant == "dora" or mod.extra.get("dora"):
        return (_dora(mod, t["magnitude"], w + delta) - w).astype(np.float32)
    return delta.astype(np.float32)

