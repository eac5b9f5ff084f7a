"""Output that is no longer numbers: the answer is stopped with the likely reason, not streamed as nonsense.

A NaN or an infinity in the logits (an adapter or a model file that holds such values, or strengths
large enough to overflow the model's activations) made llama.cpp's sampler pick one meaningless token
after another until the length limit, and made torch's draw fail with a bare "probability tensor
contains either inf, nan or element < 0". Both engines look at the logits of every token they sample
(one pass over the vocabulary, microseconds) and raise this instead."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import EngineError
from .base import ActiveAdapter


def finite(logits: np.ndarray) -> bool:
    """Whether every logit is a number (4 µs for a 32k vocabulary, 25 µs for 262k)."""
    return bool(np.isfinite(logits).all())


class OutputNotNumbers(EngineError):
    """The logits stopped being numbers; `with_adapters`: under a mix (else the model alone)."""

    def __init__(self, message: str, with_adapters: bool):
        super().__init__(message)
        self.with_adapters = with_adapters


def not_a_number(mix: Sequence[ActiveAdapter], produced: int) -> OutputNotNumbers:
    """The error for logits that are not numbers, `produced` tokens into the answer, under `mix`."""
    when = "while reading the conversation" if produced == 0 else f"after {produced} tokens of the answer"
    active = [a for a in mix if a.strength]
    if not active:
        return OutputNotNumbers(f"the model's output stopped being numbers (NaN or infinite) {when}: the model "
                                "file is damaged, or its quantization does not work on this computer", False)
    names = ", ".join(f"{a.display_name} ×{a.strength:g}" for a in active)
    return OutputNotNumbers(f"the model's output stopped being numbers (NaN or infinite) {when} under this mix "
                            f"({names}): at these strengths the adapters overflow this model, or an adapter or the "
                            "model is damaged; lower the strengths, or try without adapters to see whether the "
                            "model is at fault", True)


__all__ = ["OutputNotNumbers", "finite", "not_a_number"]
