"""blend: several adapters at strengths → one PEFT LoRA equal to their weighted sum (exact), or reduced
by SVD to a given rank with the error it reports."""
from __future__ import annotations

import json

import numpy as np
import pytest

from adapters_backend.merge.blend import blend
from adapters_backend.merge.common import MergeError
from fixtures.tiny_adapters import _load_base, _merge_at
from fixtures.tiny_gguf import TOKENS

TOL = 3e-4


def torch_logits(model):
    import torch
    with torch.no_grad():
        return model(torch.tensor([TOKENS])).logits[0].numpy()


def test_exact_blend_loads_in_peft_and_equals_the_mix(tiny_models, tiny_adapters, tmp_path):
    from peft import PeftModel
    arch = "llama"
    mix = [("dora", 0.3), ("rslora", 1.0), ("loha", -0.5), ("adalora", 0.7)]   # DoRA first: ΔW on the base
    out = tmp_path / "blend"
    result = blend([(tiny_adapters.make(arch, v), s) for v, s in mix], out, base=tiny_models.gguf(arch),
                   max_error=1e-6)
    cfg = json.loads((out / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and not cfg["use_rslora"] and not cfg["use_dora"]
    ours = torch_logits(PeftModel.from_pretrained(_load_base(arch), out))
    ref = _load_base(arch)
    for v, s in mix:
        ref = _merge_at(ref, tiny_adapters.make(arch, v), s)
    assert np.abs(ours - torch_logits(ref)).max() < 1e-4
    assert result.max_error < 1e-5            # only DoRA's SVD contributes

    # and the blended adapter converts to a GGUF that llama.cpp runs like the reference mix
    from adapters_backend.convert.to_gguf import convert_to_gguf
    gguf_ref = tiny_adapters.references([("mix", arch, [(arch, v, s) for v, s in mix])])["mix"]
    lora = convert_to_gguf(out, tiny_models.gguf(arch), tmp_path / "b.gguf")
    got = tiny_models.logits(tiny_models.gguf(arch), [(lora.path, 1.0)])
    assert np.abs(got - tiny_models.logits(gguf_ref)).max() <= TOL


def test_rank_reduction_reports_its_error(tiny_models, tiny_adapters, tmp_path):
    from adapters_backend.formats.registry import read_adapter
    from adapters_backend.core.variants import lowrank
    arch = "qwen2"
    specs = [(tiny_adapters.make(arch, "lora"), 1.0), (tiny_adapters.make(arch, "patterns"), -0.5)]
    exact = blend(specs, tmp_path / "exact")
    reduced = blend(specs, tmp_path / "r6", rank=6)
    assert set(reduced.ranks.values()) == {6} and max(exact.ranks.values()) > 6
    a, b = read_adapter(tmp_path / "exact"), read_adapter(tmp_path / "r6")
    for name, mod in a.modules.items():
        A, B = lowrank(mod, a.tensors(mod))
        A6, B6 = lowrank(b.modules[name], b.tensors(b.modules[name]))
        full = B @ A
        measured = np.linalg.norm(full - B6 @ A6) / np.linalg.norm(full)
        assert reduced.errors[name] == pytest.approx(measured, rel=1e-3, abs=1e-6)
    assert 0 < reduced.max_error < 1


def test_dora_needs_the_base(tiny_adapters, tmp_path):
    with pytest.raises(MergeError, match="DoRA"):
        blend([(tiny_adapters.make("llama", "dora"), 1.0)], tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_cli_blend(tiny_adapters, tmp_path, capsys):
    from adapters_backend.cli.main import main
    out = tmp_path / "b"
    rc = main(["blend", f"{tiny_adapters.make('gpt2', 'lora')}:1", f"{tiny_adapters.make('gpt2', 'adalora')}:-0.5",
               "-o", str(out), "--rank", "4"])
    assert rc == 0 and (out / "adapter_model.safetensors").is_file()
    assert "max relative error" in capsys.readouterr().out
