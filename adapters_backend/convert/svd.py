"""Low-rank approximations with a stated error.

`truncate(delta, max_error)` is the best rank-k factorisation (Eckart–Young) of a dense ΔW with the
smallest k whose relative Frobenius error ‖ΔW − B·A‖/‖ΔW‖ is ≤ max_error; `reduce_factors(A, B, k)`
does the same for a product that is already low-rank (B·A with a large inner rank, e.g. a blend),
without ever forming the dense matrix: QR of both factors leaves an (R×R) core to decompose.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Truncation:
    A: np.ndarray           # (k, in)
    B: np.ndarray           # (out, k), singular values folded in
    rank: int
    error: float            # achieved relative Frobenius error
    full_rank: int          # numerical rank of the input


def _pick_rank(s: np.ndarray, max_error: float | None, rank: int | None) -> tuple[int, float]:
    energy = s.astype(np.float64) ** 2
    total = float(energy.sum())
    if total == 0.0:
        return 0, 0.0
    tail = np.concatenate([np.cumsum(energy[::-1])[::-1], [0.0]])   # tail[k] = Σ_{i≥k} s_i²
    rel = np.sqrt(np.maximum(tail, 0.0) / total)
    if rank is not None:
        k = max(0, min(int(rank), len(s)))
    else:
        k = int(np.argmax(rel <= max(0.0, float(max_error))))
    return k, float(rel[k])


def _numerical_rank(s: np.ndarray) -> int:
    if not len(s) or s[0] == 0:
        return 0
    return int((s > s[0] * max(s.shape) * np.finfo(np.float32).eps).sum())


def truncate(delta: np.ndarray, max_error: float | None = None, rank: int | None = None) -> Truncation:
    """Best low-rank factors of `delta` meeting `max_error` (or of exactly `rank`)."""
    delta = np.asarray(delta, dtype=np.float32)
    u, s, vt = np.linalg.svd(delta, full_matrices=False)
    k, err = _pick_rank(s, max_error, rank)
    k = max(k, 1)    # a zero delta still gets a (zero) rank-1 pair, so the tensor stays listed
    B = np.ascontiguousarray(u[:, :k] * s[:k])
    A = np.ascontiguousarray(vt[:k])
    return Truncation(A, B, k, err, _numerical_rank(s))


def reduce_factors(A: np.ndarray, B: np.ndarray, max_error: float | None = None,
                   rank: int | None = None) -> Truncation:
    """Truncate B·A (B (out,R), A (R,in)) to rank k without forming the (out, in) product."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    qb, rb = np.linalg.qr(B)            # B = qb·rb
    qa, ra = np.linalg.qr(A.T)          # Aᵀ = qa·ra  →  B·A = qb·(rb·raᵀ)·qaᵀ
    u, s, vt = np.linalg.svd(rb @ ra.T, full_matrices=False)
    k, err = _pick_rank(s, max_error, rank)
    k = max(k, 1)
    Bk = (qb @ u[:, :k]) * s[:k]
    Ak = vt[:k] @ qa.T
    return Truncation(np.ascontiguousarray(Ak, dtype=np.float32), np.ascontiguousarray(Bk, dtype=np.float32),
                      k, err, _numerical_rank(s))
