"""From a plan's pieces to numbers: exact LoRA factors (convert) and dense deltas (merge), in GGUF layout.

Every low-rank variant (LoRA, rsLoRA, patterns, AdaLoRA, LoHa, LoKr, embeddings) comes from
`variants.lowrank` as A (r, in), B (out, r) with ΔW = B·A exactly and the module's scale folded into
B. DoRA is not low-rank: its exact ΔW (`variants.dense_delta`, which needs the base weight) is either
truncated by SVD to a LoRA (convert) or added as is (merge).

GGUF layout: rows reordered by the rule's transform (B's rows only, so the product stays exact), and
packed/split pieces placed at their rows of the target tensor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..arch import transforms
from ..core.adapter import Adapter, ModuleDelta
from ..core.base_model import BaseModelInfo
from .base_weights import BaseWeights
from .svd import truncate
from .targets import Piece, Target


def is_dense(mod: ModuleDelta) -> bool:
    """Modules whose ΔW is not a product of two factors (DoRA, LyCORIS LoHa/LoKr with dora_scale, and
    full replacement weights)."""
    return mod.variant in ("dora", "full") or bool(mod.extra.get("dora"))


def replacement_delta(mod: ModuleDelta, weight: np.ndarray, base_w: np.ndarray) -> np.ndarray:
    """ΔW = W_new − W for a full replacement (modules_to_save), in the base weight's (out, in) layout.
    A Conv1D module's saved weight may be (in, out); a square one is taken as stored by PyTorch."""
    weight = np.asarray(weight, dtype=np.float32)
    if weight.shape != base_w.shape:
        if weight.T.shape == base_w.shape:
            weight = weight.T
        else:
            raise ValueError(f"{mod.name}: replacement weight {weight.shape} does not fit the base {base_w.shape}")
    elif mod.fan_in_fan_out and weight.shape[0] == weight.shape[1]:
        weight = weight.T
    return weight - base_w


@dataclass
class ModuleFactors:
    A: np.ndarray            # (r, in)
    B: np.ndarray            # (out, r), GGUF row order, scale folded
    approx_error: float = 0.0   # relative Frobenius error (DoRA SVD); 0 = exact
    full_rank: int = 0


class FactorBuilder:
    """Computes each module's factors once (a split module feeds several targets) and forgets them
    after their last use, so memory stays at about one module."""

    def __init__(self, adapter: Adapter, base: BaseModelInfo, max_error: float = 1e-3,
                 weights: BaseWeights | None = None, svd_rank: int | None = None):
        self.adapter, self.base, self.max_error, self.svd_rank = adapter, base, max_error, svd_rank
        self._weights = weights
        self._cache: dict[str, ModuleFactors] = {}
        self._uses: dict[str, int] = {}
        self.dora: dict[str, tuple[int, float, int]] = {}   # module -> (rank, error, full rank)

    def count_uses(self, targets) -> None:
        for t in targets:
            for p in t.pieces:
                self._uses[p.module.name] = self._uses.get(p.module.name, 0) + 1

    @property
    def weights(self) -> BaseWeights:
        if self._weights is None:
            self._weights = BaseWeights(self.base)
        return self._weights

    def close(self) -> None:
        if self._weights is not None:
            self._weights.close()

    # -- low-rank factors ------------------------------------------------------------------------
    def module_factors(self, piece: Piece, target: Target) -> ModuleFactors:
        name = piece.module.name
        f = self._cache.get(name)
        if f is None:
            f = self._compute(piece, target)
            if self._uses.get(name, 1) > 1:
                self._cache[name] = f
        left = self._uses.get(name, 1) - 1
        self._uses[name] = left
        if left <= 0:
            self._cache.pop(name, None)
        return f

    def _compute(self, piece: Piece, target: Target) -> ModuleFactors:
        from ..core.variants import lowrank

        mod = piece.module
        tensors = self.adapter.tensors(mod)
        if is_dense(mod):
            delta = self.dense_hf_delta(piece, target, tensors)
            t = truncate(delta, self.max_error, self.svd_rank)
            self.dora[mod.name] = (t.rank, t.error, t.full_rank)
            A, B, err, full = t.A, t.B, t.error, t.full_rank
        else:
            A, B = lowrank(mod, tensors)
            err, full = 0.0, 0
        A = np.asarray(A, dtype=np.float32)
        B = np.asarray(B, dtype=np.float32)
        if target.kind != "embedding":
            B = transforms.apply(piece.transform, B, self.base.transform_hparams())
        return ModuleFactors(A, B, err, full)

    # -- dense deltas ------------------------------------------------------------------------------
    def hf_base_weight(self, piece: Piece, target: Target, w_gguf: np.ndarray | None = None) -> np.ndarray:
        """The base weight of piece.module in HF layout ((out, in), HF row order). `w_gguf`: the
        target's weight when the caller already has it."""
        mod = piece.module
        if piece.how in ("direct", "packed"):
            w = self.weights.gguf_weight(target.gguf) if w_gguf is None else w_gguf
            if piece.how == "packed":
                w = w[piece.row0:piece.row0 + piece.rows]
        else:   # split: the module's full weight is its parts stacked
            parts = self.base.name_map.fused_parts(self.base.match(mod.name).gguf)
            w = np.concatenate([self.weights.gguf_weight(p) for p, _ in parts], axis=0)
        if target.kind == "embedding":
            return np.ascontiguousarray(w)
        return transforms.apply(piece.transform, w, self.base.transform_hparams(), inverse=True)

    def dense_hf_delta(self, piece: Piece, target: Target, tensors=None,
                       w_gguf: np.ndarray | None = None) -> np.ndarray:
        """Exact ΔW of piece.module at strength 1, HF layout (out, in)."""
        from ..core.variants import dense_delta, lowrank

        mod = piece.module
        tensors = self.adapter.tensors(mod) if tensors is None else tensors
        if mod.variant == "full":
            return replacement_delta(mod, tensors["weight"], self.hf_base_weight(piece, target, w_gguf))
        if is_dense(mod):
            w = self.hf_base_weight(piece, target, w_gguf)
            return np.asarray(dense_delta(mod, tensors, w), dtype=np.float32)
        A, B = lowrank(mod, tensors)
        return np.asarray(B, dtype=np.float32) @ np.asarray(A, dtype=np.float32)

    def gguf_delta(self, piece: Piece, target: Target, w_gguf: np.ndarray | None = None) -> tuple[np.ndarray, slice]:
        """Exact ΔW of piece.module in GGUF layout, with the rows of `target` it covers."""
        delta = self.dense_hf_delta(piece, target, w_gguf=w_gguf)
        if target.kind == "embedding":
            return delta, slice(0, target.shape[0])
        delta = transforms.apply(piece.transform, delta, self.base.transform_hparams())
        if piece.how == "packed":
            return delta, slice(piece.row0, piece.row0 + piece.rows)
        if piece.how == "split":
            return delta[piece.src0:piece.src0 + piece.rows], slice(0, target.shape[0])
        return delta, slice(0, target.shape[0])


def assemble_lora(target: Target, factors: list[tuple[Piece, ModuleFactors]]) -> tuple[np.ndarray, np.ndarray]:
    """(lora_a, lora_b) in numpy order as llama.cpp wants them for `target`.

    Linear: lora_a (R, in), lora_b (out, R) with R = Σ ranks; several pieces share the target through
    concatenated A's and a block-placed B (exact: B·A = Σ Bᵢ·Aᵢ at their rows).
    Embedding (token_embd): ΔE (vocab, dim) = B·A → lora_a = B (vocab, R), lora_b = Aᵀ (dim, R).
    """
    if target.kind == "embedding":
        lora_a = np.concatenate([f.B for _, f in factors], axis=1)
        lora_b = np.concatenate([f.A.T for _, f in factors], axis=1)
        return np.ascontiguousarray(lora_a), np.ascontiguousarray(lora_b)
    out_rows = target.shape[0]
    total = sum(f.A.shape[0] for _, f in factors)
    lora_a = np.concatenate([f.A for _, f in factors], axis=0)
    if len(factors) == 1 and factors[0][0].how == "direct":
        return np.ascontiguousarray(lora_a), np.ascontiguousarray(factors[0][1].B)
    lora_b = np.zeros((out_rows, total), dtype=np.float32)
    col = 0
    for piece, f in factors:
        r = f.A.shape[0]
        if piece.how == "packed":
            lora_b[piece.row0:piece.row0 + piece.rows, col:col + r] = f.B
        elif piece.how == "split":
            lora_b[:, col:col + r] = f.B[piece.src0:piece.src0 + piece.rows]
        else:
            lora_b[:, col:col + r] = f.B
        col += r
    return np.ascontiguousarray(lora_a), lora_b
