"""Whether float32 values fit the type they are about to be stored as.

A value past float16's range becomes an infinity when numpy casts it (numpy only warns), and so do the
float16 block scales of quantized GGUF types: a merge at a strength that pushes a weight past 65,504
wrote a model that answers with nonsense, and said it had succeeded. Writers of computed values (merges,
the converter) check each piece before they store it; the caller names the tensor."""
from __future__ import annotations

import numpy as np

F16_MAX = 65504.0
FLOATS = {"F32": float(np.finfo(np.float32).max), "F64": float(np.finfo(np.float64).max),
          "BF16": 3.3895313892515355e38, "F16": F16_MAX}
# Quantized GGUF types keep float16 block scales: Q8_0's is the block's largest value / 127; for the
# others F16_MAX is a bound that always leaves their scales finite (no real weight comes near it).
QUANTIZED = {"Q8_0": F16_MAX * 127}


class ValuesDoNotFit(ValueError):
    """Values that the type they are stored as cannot hold; `not_numbers`: NaN or infinite already (a
    damaged input), not merely too large."""

    def __init__(self, message: str, not_numbers: bool = False):
        super().__init__(message)
        self.not_numbers = not_numbers


def require_fit(values: np.ndarray, type_name: str, name: str = "") -> None:
    """ValuesDoNotFit when `values` hold a NaN or an infinity, or reach past what `type_name` (a GGUF or
    safetensors type name: F32, F16, BF16, Q8_0, Q4_K …) stores; `name` (the tensor) starts its message."""
    if not values.size:
        return
    said = f"{name}: " if name else ""
    peak = max(float(values.max()), -float(values.min()))
    if not np.isfinite(peak):
        raise ValuesDoNotFit(f"{said}its values are not all numbers (NaN or infinite)", not_numbers=True)
    kind = type_name.upper()
    limit = FLOATS.get(kind) or QUANTIZED.get(kind, F16_MAX)
    if peak > limit:
        most = f"{limit:,.0f}" if limit < 1e9 else f"{limit:.3g}"
        raise ValuesDoNotFit(f"{said}its values reach {peak:.3g}, past " + (
            f"the {most} that {kind} holds" if kind in FLOATS else f"{most}, the most LoRA Deck stores as {kind}"))


__all__ = ["F16_MAX", "ValuesDoNotFit", "require_fit"]
