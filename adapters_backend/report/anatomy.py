"""Adapter anatomy: how strongly each adapted module changes its weight, from the factors only.

For a LoRA module ΔW = c·B·A, ‖ΔW‖_F² = c²·trace((BᵀB)(AAᵀ)): two r×r Gram matrices, never the
out×in product. The result is a layer × module table of update norms ("where the adapter acts"),
plus rank and scale per module, ready for a heat map.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.adapter import Adapter, ModuleDelta

_ROW_BLOCK = 256          # rows of a Hadamard product formed at a time (LoHa)


def lowrank_fro_norm(b: np.ndarray, a: np.ndarray) -> float:
    """‖B·A‖_F for B (out, r), A (r, in), through the r×r Grams."""
    b = np.asarray(b, dtype=np.float64)
    a = np.asarray(a, dtype=np.float64)
    value = float(np.trace((b.T @ b) @ (a @ a.T)))
    return math.sqrt(max(value, 0.0))


def _matrix_norm(parts: dict, full: str, down: str, up: str) -> float:
    """‖W‖_F where W is stored whole (`full`) or as up·down."""
    if full in parts:
        return float(np.linalg.norm(np.asarray(parts[full], dtype=np.float64)))
    return lowrank_fro_norm(parts[up], parts[down])


def _hadamard_norm(w1a, w1b, w2a, w2b) -> float:
    """‖(w1a·w1b) ⊙ (w2a·w2b)‖_F, formed a block of rows at a time (bounded memory)."""
    total = 0.0
    w1b = np.asarray(w1b, np.float64)
    w2b = np.asarray(w2b, np.float64)
    for start in range(0, w1a.shape[0], _ROW_BLOCK):
        x = np.asarray(w1a[start:start + _ROW_BLOCK], np.float64) @ w1b
        y = np.asarray(w2a[start:start + _ROW_BLOCK], np.float64) @ w2b
        total += float(np.sum((x * y) ** 2))
    return math.sqrt(total)


def module_update_norm(adapter: Adapter, mod: ModuleDelta) -> float | None:
    """‖ΔW‖_F at strength 1, or None when the module is not an additive update (full/bias replacement)."""
    t = adapter.tensors(mod)
    c = abs(float(mod.scale))
    if mod.variant in ("lora", "dora", "embedding"):
        return c * lowrank_fro_norm(t["B"], t["A"])
    if mod.variant == "adalora":
        e = np.asarray(t["E"], np.float64).reshape(-1, 1)
        return c * lowrank_fro_norm(t["B"], e * np.asarray(t["A"], np.float64))
    if mod.variant == "lokr":
        # ‖kron(X, Y)‖_F = ‖X‖_F·‖Y‖_F
        return c * _matrix_norm(t, "w1", "w1b", "w1a") * _matrix_norm(t, "w2", "w2b", "w2a")
    if mod.variant == "loha":
        return c * _hadamard_norm(t["w1a"], t["w1b"], t["w2a"], t["w2b"])
    return None


@dataclass
class Anatomy:
    layers: list[int | None]                 # row labels (None: modules outside any block)
    modules: list[str]                       # column labels (short module names)
    norms: list[list[float | None]]          # [row][col]; None = module not adapted there
    ranks: list[list[int | None]]
    scales: list[list[float | None]]
    full_names: list[list[str | None]]
    max_norm: float = 0.0
    skipped: list[str] = field(default_factory=list)   # modules without a low-rank update


def compute_anatomy(adapter: Adapter, ctx=None) -> Anatomy:
    mods = list(adapter)
    layers = sorted({m.layer for m in mods if m.layer is not None})
    if any(m.layer is None for m in mods):
        layers = layers + [None]
    columns: dict[str, None] = {}
    for m in mods:
        columns.setdefault(m.short_name, None)
    cols = list(columns)
    row_of = {layer: i for i, layer in enumerate(layers)}
    col_of = {name: j for j, name in enumerate(cols)}
    empty = lambda: [[None] * len(cols) for _ in layers]
    norms, ranks, scales, names = empty(), empty(), empty(), empty()
    skipped, max_norm = [], 0.0
    for i, m in enumerate(mods):
        if ctx is not None:
            ctx.check()
            ctx.report(i, len(mods), m.name)
        r, c = row_of[m.layer], col_of[m.short_name]
        value = module_update_norm(adapter, m)
        if value is None:
            skipped.append(m.name)
        else:
            max_norm = max(max_norm, value)
        norms[r][c], ranks[r][c], scales[r][c], names[r][c] = value, m.rank, m.scale, m.name
    return Anatomy(layers, cols, norms, ranks, scales, names, max_norm, skipped)
