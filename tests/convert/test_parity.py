"""The heart of `convert`: for every architecture × variant, llama.cpp with our converted LoRA GGUF at
strengths 1, 0.5 and −1 (and a two-adapter mix) gives the logits of the reference — the same base
with the adapter merged exactly by PEFT at that strength, converted by llama.cpp's own
convert_hf_to_gguf.py and run in llama.cpp — to max |Δlogit| ≤ 3e-4.

Measured noise between runtime and merged in f32 is ~1e-6 for SiLU models and ≤ ~1e-4 for GELU models
(llama.cpp's CPU GELU reads an f16 table); a wrong scale or permutation shows up as 1e-2 to 1.
"""
from __future__ import annotations

import numpy as np
import pytest
from fixtures.tiny_adapters import VARIANTS, supported
from fixtures.tiny_gguf import ARCHS

TOL = 3e-4
STRENGTHS = (1.0, 0.5, -1.0)
TIED = ("gpt2", "gemma", "bloom")          # no output tensor: llama.cpp would reuse token_embd
CASES = [(a, v) for a in ARCHS for v in VARIANTS if supported(a, v) and not (v == "embed" and a in TIED)]
MIXES = {a: (("lora", 0.8), ("adalora" if a == "gpt2" else "loha", -0.6)) for a in ARCHS}


@pytest.fixture(scope="module")
def refs(tiny_adapters):
    """All reference GGUFs of this file, built in one llama.cpp converter run (cached on disk)."""
    reqs = [(f"{a}/{v}@{s}", a, [(a, v, s)]) for a, v in CASES for s in STRENGTHS]
    reqs += [(f"{a}/mix", a, [(a, v, s) for v, s in mix]) for a, mix in MIXES.items()]
    return tiny_adapters.references(reqs)


@pytest.fixture(scope="module")
def converted(tiny_models, tiny_adapters, tmp_path_factory):
    from adapters_backend.convert.to_gguf import convert_to_gguf

    out_dir = tmp_path_factory.mktemp("converted")
    done = {}

    def get(arch, variant, **kw):
        key = (arch, variant, tuple(sorted(kw.items())))
        if key not in done:
            path = out_dir / f"{arch}-{variant}-{len(done)}.gguf"
            done[key] = convert_to_gguf(tiny_adapters.make(arch, variant), tiny_models.gguf(arch), path, **kw)
        return done[key]

    return get


@pytest.mark.parametrize("arch,variant", CASES, ids=[f"{a}-{v}" for a, v in CASES])
def test_runtime_matches_peft_merge(arch, variant, tiny_models, refs, converted):
    # DoRA is not low-rank: at full rank (tiny max_error) its SVD is exact; default errors: test_dora.
    result = converted(arch, variant, **({"max_error": 1e-6} if variant == "dora" else {}))
    assert not result.warnings, result.warnings
    base = tiny_models.gguf(arch)
    base_logits = tiny_models.logits(base)
    for s in STRENGTHS:
        ref = tiny_models.logits(refs[f"{arch}/{variant}@{s}"])
        got = tiny_models.logits(base, [(result.path, s)])
        err = float(np.abs(got - ref).max())
        effect = float(np.abs(ref - base_logits).max())
        assert effect > 100 * TOL, f"the adapter barely changes the output ({effect}); the check would be blind"
        assert err <= TOL, f"strength {s}: max |Δlogit| = {err:.2e} (adapter effect {effect:.2f})"


@pytest.mark.parametrize("arch", ARCHS)
def test_two_adapter_mix(arch, tiny_models, tiny_adapters, refs, converted):
    base = tiny_models.gguf(arch)
    adapters = [(converted(arch, v).path, s) for v, s in MIXES[arch]]
    got = tiny_models.logits(base, adapters)
    ref = tiny_models.logits(refs[f"{arch}/mix"])
    assert float(np.abs(got - ref).max()) <= TOL
    # control: a sign error in either strength is caught
    wrong = tiny_models.logits(base, [(adapters[0][0], adapters[0][1]), (adapters[1][0], -adapters[1][1])])
    assert float(np.abs(wrong - ref).max()) > 10 * TOL


@pytest.mark.parametrize("arch", TIED)
def test_embedding_lora_on_tied_base_is_skipped_with_a_warning(arch, tiny_models, converted):
    """llama.cpp would apply a token_embd LoRA to the tied output matmul too and abort the process."""
    result = converted(arch, "embed")
    skipped = [w for w in result.warnings if "ties its output layer" in w]
    assert len(skipped) == 1 and ("wte" in skipped[0] or "embed" in skipped[0])
    assert "token_embd.weight" not in result.ranks
    logits = tiny_models.logits(tiny_models.gguf(arch), [(result.path, 1.0)])   # loads and runs
    assert np.isfinite(logits).all()
