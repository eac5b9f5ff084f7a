"""Token sampling for the PyTorch engine, in the order llama-cpp-python's sampler chain uses
(repeat penalty over the last 64 tokens → top-k → top-p → min-p → temperature → draw), so the same
SamplingParams mean the same thing on both engines. temperature ≤ 0 is greedy."""
from __future__ import annotations

from .base import SamplingParams

PENALTY_LAST_N = 64


def sample(logits, params: SamplingParams, recent: list[int], generator) -> int:
    import torch

    logits = logits.float().clone()
    if params.repeat_penalty and params.repeat_penalty != 1.0 and recent:
        ids = torch.tensor(sorted(set(recent[-PENALTY_LAST_N:])), dtype=torch.long, device=logits.device)
        vals = logits[ids]
        logits[ids] = torch.where(vals > 0, vals / params.repeat_penalty, vals * params.repeat_penalty)
    if params.temperature <= 0:
        return int(torch.argmax(logits))
    if params.top_k and 0 < params.top_k < logits.numel():
        kth = torch.topk(logits, params.top_k).values[-1]
        logits[logits < kth] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    if 0 < params.top_p < 1:
        sorted_p, order = torch.sort(probs, descending=True)
        cum = torch.cumsum(sorted_p, dim=-1)
        drop = cum - sorted_p > params.top_p          # keep the smallest prefix reaching top_p
        logits[order[drop]] = float("-inf")
        probs = torch.softmax(logits, dim=-1)
    if params.min_p and params.min_p > 0:
        logits[probs < params.min_p * probs.max()] = float("-inf")
    probs = torch.softmax(logits / params.temperature, dim=-1)
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))
