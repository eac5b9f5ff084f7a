"""Activated LoRA (aLoRA): an adapter that acts only from its invocation tokens on.

PEFT (`LoraConfig.alora_invocation_tokens`, `calculate_alora_offsets` and `ALoraLinearVariant`) and
llama-server (`server-context.cpp`) agree on the rule, and so do both LoRA Deck engines: find the
*last* occurrence of the adapter's invocation tokens in the prompt; the adapter applies at its first
token and at every later position, generated tokens included. Before it the model runs as if the
adapter were absent, so that part of the KV cache is the cache of the rest of the mix (for an aLoRA
alone: the base model's), shared with the base and with every other aLoRA. An invocation that does
not occur leaves the adapter off for that prompt. An aLoRA cannot be merged or fused.

A mix with aLoRAs therefore runs in segments: from position 0 the adapters that are not activated,
and from each invocation start the ones activated there too. `plan` computes the segments.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def invocation_start(tokens: Sequence[int] | np.ndarray, invocation: Sequence[int]) -> int | None:
    """Where the last occurrence of `invocation` starts in `tokens` (None: it does not occur)."""
    toks = np.asarray(tokens, dtype=np.int64)
    inv = np.asarray(invocation, dtype=np.int64)
    n, k = len(toks), len(inv)
    if k == 0 or k > n:
        return None
    candidates = np.flatnonzero(toks[: n - k + 1] == inv[0])
    for start in candidates[::-1]:
        if np.array_equal(toks[start:start + k], inv):
            return int(start)
    return None


def plan(tokens: Sequence[int], invocations: Sequence[Sequence[int] | None],
         activate: bool = True) -> list[tuple[int, frozenset[int]]]:
    """Segments for a mix whose i-th adapter has the invocation tokens `invocations[i]` (None or empty:
    an ordinary adapter, active everywhere): [(first position, indices of the adapters active from
    there)], ascending, the first at 0. `activate=False` leaves every aLoRA off (reading a conversation
    ahead of a prompt that will invoke it later)."""
    starts: dict[int, int | None] = {}
    for i, inv in enumerate(invocations):
        if inv:
            starts[i] = invocation_start(tokens, inv) if activate else None
    always = frozenset(i for i in range(len(invocations)) if i not in starts)
    out = [(0, always)]
    for pos in sorted({s for s in starts.values() if s is not None}):
        active = always | {i for i, s in starts.items() if s is not None and s <= pos}
        if pos == 0:
            out[0] = (0, active)
        else:
            out.append((pos, active))
    return out


__all__ = ["invocation_start", "plan"]
