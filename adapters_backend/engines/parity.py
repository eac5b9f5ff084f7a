"""Cross-engine parity: the same token ids through llama.cpp (GGUF) and PyTorch (HF folder).

Reports max |Δlogit| on the base alone and on the adapter mix's *effect* (logits with the mix minus
logits without, per engine), and whether greedy continuations agree. Two independent f32
implementations drift a little: ~2e-4 on a base and up to ~3e-3 on an adapter's effect on tiny
models. A wrong scale or a missing module moves logits by 1e-1 or more, so the verdict compares
each difference with the size of what it measures and calls only clear departures a mismatch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog. LoRA adapters change what a model says."
BASE_TOL = 1e-2             # absolute, on the base logits
EFFECT_REL_TOL = 0.05       # relative to the largest |effect|
EFFECT_ABS_TOL = 1e-2


@dataclass
class ParityReport:
    tokens: int
    base_max_diff: float
    effect_max_diff: float | None
    effect_size: float | None
    greedy_base_agree: bool
    greedy_mix_agree: bool | None
    verdict: str                                 # "agree" | "mismatch"
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        lines = [f"tokens compared       {self.tokens}",
                 f"base  max |Δlogit|    {self.base_max_diff:.3g}",
                 f"greedy (base) agree   {'yes' if self.greedy_base_agree else 'no'}"]
        if self.effect_max_diff is not None:
            lines += [f"effect max |Δlogit|   {self.effect_max_diff:.3g}  (effect size {self.effect_size:.3g})",
                      f"greedy (mix) agree    {'yes' if self.greedy_mix_agree else 'no'}"]
        lines.append(f"verdict               {self.verdict.upper()}")
        lines += [f"  - {r}" for r in self.reasons]
        return "\n".join(lines)


def _greedy(engine, tokens: list[int], steps: int) -> list[int]:
    seq = list(tokens)
    for _ in range(steps):
        seq.append(int(np.argmax(engine.eval_logits(seq)[-1])))
    return seq[len(tokens):]


def compare(llama_engine, torch_engine, mix, tokens: list[int], greedy_steps: int = 8,
            torch_mix=None) -> ParityReport:
    """Both engines loaded; `mix` a list of ActiveAdapter (`torch_mix`, if given, for the PyTorch side:
    how the tests show that a real mismatch is caught). Leaves both engines with no adapters."""
    reasons: list[str] = []
    llama_engine.set_adapters([])
    torch_engine.set_adapters([])
    base_l, base_t = llama_engine.eval_logits(tokens), torch_engine.eval_logits(tokens)
    if base_l.shape != base_t.shape:
        raise ValueError(f"the engines disagree on the vocabulary: {base_l.shape[1]} vs {base_t.shape[1]} logits")
    base_diff = float(np.abs(base_l - base_t).max())
    greedy_base = _greedy(llama_engine, tokens, greedy_steps) == _greedy(torch_engine, tokens, greedy_steps)
    ok = base_diff <= BASE_TOL
    if not ok:
        reasons.append(f"the base models differ by {base_diff:.3g} (> {BASE_TOL}): not the same weights?")
    effect_diff = effect_size = greedy_mix = None
    if mix:
        llama_engine.set_adapters(mix)
        torch_engine.set_adapters(mix if torch_mix is None else torch_mix)
        mix_l, mix_t = llama_engine.eval_logits(tokens), torch_engine.eval_logits(tokens)
        eff_l, eff_t = mix_l - base_l, mix_t - base_t
        effect_diff = float(np.abs(eff_l - eff_t).max())
        effect_size = float(max(np.abs(eff_l).max(), np.abs(eff_t).max()))
        greedy_mix = _greedy(llama_engine, tokens, greedy_steps) == _greedy(torch_engine, tokens, greedy_steps)
        limit = EFFECT_ABS_TOL + EFFECT_REL_TOL * effect_size
        if effect_diff > limit:
            ok = False
            reasons.append(f"the adapters' effect differs by {effect_diff:.3g} (limit {limit:.3g} for an effect of "
                           f"{effect_size:.3g}): a wrong scale, a missing module or a wrong row order")
        llama_engine.set_adapters([])
        torch_engine.set_adapters([])
    if ok:
        reasons.append("differences are within ordinary floating-point drift between the two implementations")
    if greedy_mix is False or not greedy_base:
        reasons.append("greedy continuations differ (expected only when two tokens are nearly tied)")
    return ParityReport(len(tokens), base_diff, effect_diff, effect_size, greedy_base, greedy_mix,
                        "agree" if ok else "mismatch", reasons)


def run_parity(model_gguf, model_hf, mix, text: str = DEFAULT_TEXT, greedy_steps: int = 8) -> ParityReport:
    from .llama_cpp_engine import LlamaCppEngine
    from .torch_engine import TorchEngine

    torch_engine = TorchEngine(device="cpu", dtype="float32")
    llama_engine = LlamaCppEngine(n_ctx=512, logits_all=True, fuse_mixes=False)
    try:
        torch_engine.load(model_hf)
        llama_engine.load(model_gguf)
        tokens = torch_engine.tokenize(text)[: 512 - greedy_steps - 1]
        return compare(llama_engine, torch_engine, list(mix), tokens, greedy_steps)
    finally:
        llama_engine.close()
        torch_engine.close()
