"""Every reader gives PEFT's own ΔW, module by module.

The reference is PEFT itself: each tiny adapter is loaded with `PeftModel.from_pretrained` and every
adapted layer's `get_delta_weight` (or, for DoRA, the weight PEFT's merge writes) is compared with what
LoRA Deck computes from the canonical form (`variants.lowrank` / `dense_delta`). The same adapter
re-packaged as Ludwig, Kohya/LyCORIS and llama.cpp GGUF must give the same numbers."""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest

from adapters_backend.core.variants import dense_delta, lowrank
from adapters_backend.formats.registry import read_adapter

ARCHS_BY_VARIANT = [("llama", v) for v in ("lora", "rslora", "patterns", "dora", "loha", "lokr", "adalora", "embed")] + \
    [("gpt2", "lora"), ("phi3", "patterns"), ("bloom", "rslora"), ("qwen2", "loha")]
TOL = 1e-5


def _peft_model(arch, folder):
    import torch
    from fixtures.tiny_gguf import tiny_hf_model
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_hf_model(arch), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PeftModel.from_pretrained(base, folder)


def _peft_deltas(pm):
    """{module name: (ΔW in (out, in) orientation, base weight (out, in), layer)} from PEFT."""
    import torch

    out = {}
    for name, layer in pm.base_model.model.named_modules():
        if not hasattr(layer, "get_delta_weight") or "default" not in getattr(layer, "scaling", {"default": 0}) \
                and not hasattr(layer, "hada_w1_a") and not hasattr(layer, "lokr_w1"):
            continue
        with torch.no_grad():
            delta = layer.get_delta_weight("default").float().numpy()
        w = layer.get_base_layer().weight.detach().float().numpy()
        if getattr(layer, "fan_in_fan_out", False):
            delta, w = delta.T, w.T
        out[name] = (delta, w, layer)
    return out


def _ours(adapter, mod, w):
    t = adapter.tensors(mod)
    if mod.variant == "dora":
        return dense_delta(mod, t, w)
    A, B = lowrank(mod, t)
    return B @ A


@pytest.mark.parametrize("arch,variant", ARCHS_BY_VARIANT, ids=[f"{a}-{v}" for a, v in ARCHS_BY_VARIANT])
def test_peft_reader_matches_peft(arch, variant, tiny_adapters):
    import torch

    folder = tiny_adapters.make(arch, variant)
    adapter = read_adapter(folder)
    pm = _peft_model(arch, folder)
    ref = _peft_deltas(pm)
    assert set(adapter.modules) == set(ref), set(adapter.modules) ^ set(ref)
    for name, mod in adapter.modules.items():
        delta, w, layer = ref[name]
        if mod.variant == "embedding":
            w = layer.get_base_layer().weight.detach().numpy()
        if mod.variant == "dora":
            # PEFT's get_delta_weight is only the LoRA part; the reference is what its merge writes.
            merged_layer = copy.deepcopy(layer)
            with torch.no_grad():
                merged_layer.merge(adapter_names=["default"])
            delta = merged_layer.get_base_layer().weight.detach().numpy() - w
        got = _ours(adapter, mod, w)
        scale = max(float(np.abs(delta).max()), 1e-3)
        assert np.abs(got - delta).max() <= TOL * scale * 10, f"{name} ({mod.variant})"


@pytest.mark.parametrize("arch,variant", [("llama", "lora"), ("llama", "rslora"), ("qwen2", "adalora"),
                                          ("llama", "dora")])
def test_ludwig_matches_peft(arch, variant, tiny_adapters):
    peft = read_adapter(tiny_adapters.make(arch, variant))
    lud = read_adapter(tiny_adapters.ludwig(arch, variant))
    assert lud.format_id == "ludwig" and set(lud.modules) == set(peft.modules)
    for name, mod in peft.modules.items():
        other = lud.modules[name]
        assert (other.variant, other.rank, other.scale) == (mod.variant, mod.rank, mod.scale)


KOHYA = [("llama", "lora"), ("llama", "patterns"), ("llama", "loha"), ("llama", "lokr"), ("phi3", "lora"),
         ("bloom", "lora"), ("gpt2", "lora")]


@pytest.mark.parametrize("arch,variant", KOHYA, ids=[f"{a}-{v}" for a, v in KOHYA])
def test_kohya_matches_peft_without_a_base(arch, variant, tiny_adapters):
    """Module names come back from the architecture tables alone; scales follow Kohya/LyCORIS rules."""
    peft = read_adapter(tiny_adapters.make(arch, variant))
    koh = read_adapter(tiny_adapters.kohya(arch, variant))
    assert koh.format_id == "kohya"
    assert set(koh.modules) == set(peft.modules)
    for name, mod in peft.modules.items():
        A, B = lowrank(mod, peft.tensors(mod))
        A2, B2 = lowrank(koh.modules[name], koh.tensors(koh.modules[name]))
        np.testing.assert_allclose(B2 @ A2, B @ A, rtol=1e-5, atol=1e-6, err_msg=name)


def test_kohya_with_a_base_and_other_prefixes(tiny_models, tiny_adapters):
    from adapters_backend.core.base_model import load_base_model

    base = load_base_model(tiny_models.gguf("llama"))
    for prefix in ("lora_te", "lycoris", "lora_te1"):
        koh = read_adapter(tiny_adapters.kohya("llama", "lora", prefix=prefix), base=base)
        assert len(koh) == len(read_adapter(tiny_adapters.make("llama", "lora")))


@pytest.mark.parametrize("arch", ["llama", "phi3", "gpt2", "bloom"])
def test_gguf_adapter_reads_back_with_base(arch, tiny_models, tiny_adapters, tmp_path):
    """A LoRA GGUF written by the converter reads back to the PEFT ΔW, q/k rows put back in HF order."""
    from adapters_backend.convert.to_gguf import convert_to_gguf
    from adapters_backend.core.base_model import load_base_model

    src = read_adapter(tiny_adapters.make(arch, "rslora"))
    gguf_base = tiny_models.gguf(arch)
    out = convert_to_gguf(tiny_adapters.make(arch, "rslora"), gguf_base, tmp_path / "a.gguf").path
    back = read_adapter(out, base=load_base_model(gguf_base))
    assert back.format_id == "gguf"
    assert set(back.modules) == set(src.modules)
    for name, mod in src.modules.items():
        A, B = lowrank(mod, src.tensors(mod))
        A2, B2 = lowrank(back.modules[name], back.tensors(back.modules[name]))
        np.testing.assert_allclose(B2 @ A2, B @ A, rtol=1e-4, atol=1e-6, err_msg=name)
    plain = read_adapter(out)      # without the base: same modules, a warning about row order for Llama
    assert set(plain.modules) == set(src.modules)
    assert any("row order" in w for w in plain.warnings) == (arch in ("llama", "bloom"))
