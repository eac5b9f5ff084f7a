"""The PyTorch engine against PEFT itself: for every variant and a mix, the engine's logits equal those
of the base with the adapters merged by PEFT at the same strengths; strengths change without a reload;
other formats (Kohya, GGUF) give the same numbers; generation streams and cancels within one token."""
from __future__ import annotations

import numpy as np
import pytest

from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams
from adapters_backend.jobs import JobContext

pytest.importorskip("torch")
TOL = 1e-4
TOKENS = [1, 17, 42, 99, 7, 150, 3, 64, 12, 200]


def _reference_logits(arch, mix):
    """Logits of the tiny HF base with each (adapter folder, strength) merged by PEFT."""
    import torch
    from fixtures.tiny_adapters import _load_base, _merge_at

    model = _load_base(arch)
    for folder, s in mix:
        model = _merge_at(model, folder, s)
    with torch.no_grad():
        return model(input_ids=torch.tensor([TOKENS])).logits[0].numpy()


@pytest.fixture(scope="module")
def engines():
    from adapters_backend.engines.torch_engine import TorchEngine
    made = {}
    yield lambda arch: made.get(arch) or made.setdefault(arch, _load(TorchEngine, arch))
    for e in made.values():
        e.close()


def _load(cls, arch):
    from fixtures.tiny_gguf import tiny_hf_model
    e = cls(device="cpu", dtype="float32")
    e.load(tiny_hf_model(arch))
    return e


VARIANTS = [("llama", v) for v in ("lora", "rslora", "patterns", "dora", "loha", "lokr", "adalora", "embed")] + \
    [("gpt2", "lora"), ("phi3", "dora"), ("bloom", "patterns")]


@pytest.mark.parametrize("arch,variant", VARIANTS, ids=[f"{a}-{v}" for a, v in VARIANTS])
def test_each_variant_equals_the_peft_merge(arch, variant, tiny_adapters, engines):
    engine = engines(arch)
    folder = tiny_adapters.make(arch, variant)
    for s in (1.0, -0.5):
        engine.set_adapters([ActiveAdapter(str(folder), s)])
        got = engine.eval_logits(TOKENS)
        ref = _reference_logits(arch, [(folder, s)])
        assert np.abs(got - ref).max() <= TOL, f"strength {s}"
    engine.set_adapters([])


def test_mix_hot_switch_and_strength_zero(tiny_adapters, engines):
    """A LoRA + LoHa + DoRA mix at their own strengths equals PEFT merging them in turn; changing a strength
    does not reload (the same hook objects stay); strength 0 is the base exactly."""
    engine = engines("qwen2")
    parts = {v: tiny_adapters.make("qwen2", v) for v in ("dora", "lora", "loha")}
    base = engine.eval_logits(TOKENS)
    mix = [ActiveAdapter(str(parts["dora"]), 0.6), ActiveAdapter(str(parts["lora"]), 1.0),
           ActiveAdapter(str(parts["loha"]), -0.7)]
    engine.set_adapters(mix)
    hooks = {name: slot.handle for name, slot in engine._bank.slots.items()}
    ref = _reference_logits("qwen2", [(parts["dora"], 0.6), (parts["lora"], 1.0), (parts["loha"], -0.7)])
    assert np.abs(engine.eval_logits(TOKENS) - ref).max() <= TOL
    engine.set_adapters([ActiveAdapter(m.path, 0.0) for m in mix])
    assert {name: slot.handle for name, slot in engine._bank.slots.items()} == hooks     # nothing reloaded
    assert np.array_equal(engine.eval_logits(TOKENS), base)
    engine.set_adapters([])
    assert not engine._bank.slots


@pytest.mark.parametrize("variant", ["lora", "loha", "lokr"])
def test_kohya_file_runs_like_its_peft_original(variant, tiny_adapters, engines):
    engine = engines("llama")
    engine.set_adapters([ActiveAdapter(str(tiny_adapters.kohya("llama", variant)), 0.8)])
    got = engine.eval_logits(TOKENS)
    engine.set_adapters([])
    assert np.abs(got - _reference_logits("llama", [(tiny_adapters.make("llama", variant), 0.8)])).max() <= TOL


def test_gguf_adapter_runs_with_rows_back_in_hf_order(tiny_models, tiny_adapters, engines, tmp_path):
    from adapters_backend.convert.to_gguf import convert_to_gguf
    folder = tiny_adapters.make("llama", "rslora")
    lora = convert_to_gguf(folder, tiny_models.gguf("llama"), tmp_path / "a.gguf").path
    engine = engines("llama")
    engine.set_adapters([ActiveAdapter(str(lora), 1.0)])
    got = engine.eval_logits(TOKENS)
    engine.set_adapters([])
    assert np.abs(got - _reference_logits("llama", [(folder, 1.0)])).max() <= 1e-3


def test_per_layer_strength(tiny_adapters, engines):
    """Factor 0 on layer 0 leaves only layer 1's modules acting: equal to the adapter with layer 0 removed."""
    import json
    import shutil

    from safetensors.numpy import load_file, save_file
    engine = engines("llama")
    folder = tiny_adapters.make("llama", "lora")
    engine.set_adapters([ActiveAdapter(str(folder), 1.0, layer_scales=((0, 0, 0.0),))])
    got = engine.eval_logits(TOKENS)
    engine.set_adapters([])
    trimmed = tiny_adapters.make("llama", "lora").parent / "peft-llama-lora-layer1-only"
    if not trimmed.exists():
        tmp = trimmed.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        t = load_file(folder / "adapter_model.safetensors")
        save_file({k: v for k, v in t.items() if ".layers.0." not in k}, str(tmp / "adapter_model.safetensors"))
        cfg = json.loads((folder / "adapter_config.json").read_text())
        cfg["layers_to_transform"] = [1]
        (tmp / "adapter_config.json").write_text(json.dumps(cfg))
        tmp.rename(trimmed)
    assert np.abs(got - _reference_logits("llama", [(trimmed, 1.0)])).max() <= TOL


def test_generation_streams_and_cancels_within_one_token(engines):
    engine = engines("llama")
    params = SamplingParams(max_tokens=12, temperature=0.0, repeat_penalty=1.0)
    chunks = list(engine.generate([ChatMessage("user", "hello")], params))
    assert chunks[-1].finished and chunks[-1].finish_reason in ("stop", "length")
    assert sum(c.n_tokens for c in chunks) == chunks[-1].completion_tokens
    again = "".join(c.text for c in engine.generate([ChatMessage("user", "hello")], params))
    assert again == "".join(c.text for c in chunks)          # greedy is deterministic
    ctx = JobContext()
    seen = []
    for chunk in engine.generate([ChatMessage("user", "hello")], SamplingParams(max_tokens=50, temperature=0.8, seed=3), ctx):
        seen.append(chunk)
        ctx.cancel()
    assert seen[-1].finish_reason == "cancelled" and seen[-1].completion_tokens == 1


def test_adapter_for_another_model_is_refused(tiny_adapters, engines):
    from adapters_backend.errors import BackendError
    engine = engines("gpt2")
    with pytest.raises(BackendError, match="none of its modules exist in this model|does not fit"):
        engine.set_adapters([ActiveAdapter(str(tiny_adapters.make("llama", "lora")), 1.0)])
    assert engine.adapters() == []


def test_an_adapter_that_overflows_the_model_stops_the_answer_with_the_mix(tiny_adapters, engines, tmp_path):
    """Finite factors too large for the model: the logits stop being numbers, and the answer stops with
    the mix named (torch's draw failed with a bare "probability tensor contains either inf, nan …")."""
    import shutil

    from safetensors.numpy import load_file, save_file

    from adapters_backend.errors import EngineError
    engine = engines("llama")
    ask = [ChatMessage("user", "hello")]
    params = SamplingParams(max_tokens=6, temperature=0.8, seed=1)
    plain = "".join(c.text for c in engine.generate(ask, params))
    huge = tmp_path / "huge"
    shutil.copytree(tiny_adapters.make("llama", "lora"), huge)
    weights = load_file(str(huge / "adapter_model.safetensors"))
    save_file({k: v * np.float32(1e30) if "lora_B" in k else v for k, v in weights.items()},
              str(huge / "adapter_model.safetensors"))
    engine.set_adapters([ActiveAdapter(str(huge), 1.5, name="loud")])
    chunks = []
    with pytest.raises(EngineError) as err:
        for chunk in engine.generate(ask, params):
            chunks.append(chunk)
    assert chunks == []
    assert "stopped being numbers (NaN or infinite) while reading the conversation under this mix (loud ×1.5)" \
        in str(err.value)
    engine.set_adapters([])
    assert "".join(c.text for c in engine.generate(ask, params)) == plain
