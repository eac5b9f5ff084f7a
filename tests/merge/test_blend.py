"""blend: several adapters at strengths → one PEFT LoRA equal to their weighted sum (exact), or reduced
by SVD to a given rank with the error it reports."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from fixtures.tiny_adapters import _load_base, _merge_at
from fixtures.tiny_gguf import TOKENS

from adapters_backend.merge.blend import blend
from adapters_backend.merge.common import MergeError

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
    from adapters_backend.core.variants import lowrank
    from adapters_backend.formats.registry import read_adapter
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


def _weight_deltas(arch, adapter, strength):
    """PEFT's own merge of `adapter` at `strength` (DoRA: W + s·(W'(1) − W)), as module -> ΔW."""
    base = {k: v.numpy().copy() for k, v in _load_base(arch).state_dict().items()}
    merged = _merge_at(_load_base(arch), adapter, strength).state_dict()
    return {k.removesuffix(".weight"): merged[k].numpy() - base[k] for k in base
            if k.endswith(".weight") and not np.array_equal(merged[k].numpy(), base[k])}


def _blended_deltas(folder):
    from adapters_backend.core.variants import lowrank
    from adapters_backend.formats.registry import read_adapter
    a = read_adapter(folder)
    out = {}
    for name, mod in a.modules.items():
        A, B = lowrank(mod, a.tensors(mod))
        out[name] = np.asarray(B, np.float64) @ np.asarray(A, np.float64)
    return out


def _rel(delta, ref):
    return float(np.linalg.norm(delta - ref) / np.linalg.norm(ref))


def test_dora_blend_is_within_max_error_of_peft_merge(tiny_models, tiny_adapters, tmp_path):
    """The blend of a DoRA adapter differs from PEFT's merged update by at most --max-error, module by
    module, and reports the error it has; 'exact' is never claimed for it."""
    arch, s = "llama", 0.7
    dora = tiny_adapters.make(arch, "dora")
    ref = _weight_deltas(arch, dora, s)
    for limit in (1e-3, 0.2):
        out = tmp_path / f"b{limit}"
        result = blend([(dora, s)], out, base=tiny_models.gguf(arch), max_error=limit)
        got = _blended_deltas(out)
        assert set(got) == set(ref)
        for name, delta in got.items():
            err = _rel(delta, ref[name])
            assert err <= limit * 1.01 + 1e-6, (name, err)
            assert err == pytest.approx(result.errors[name], rel=0.05, abs=2e-5)
        assert 0 < result.max_error <= limit and set(result.dora_errors) == set(ref)
        assert any("DoRA is not low-rank" in n for n in result.notes)
    assert max(result.ranks.values()) < 64             # a looser limit gives smaller factors


def test_dora_blend_with_a_rank_too_small_stops_and_names_the_rank_it_needs(tiny_models, tiny_adapters, tmp_path):
    arch = "llama"
    dora, lora = tiny_adapters.make(arch, "dora"), tiny_adapters.make(arch, "lora")
    mix = [(dora, 1.0), (lora, 0.5)]
    with pytest.raises(MergeError, match=r"at rank 4, 14 module\(s\) would differ .* more than --max-error "
                                         r"0\.001 .* need rank (\d+)\. Nothing was written") as info:
        blend(mix, tmp_path / "small", base=tiny_models.gguf(arch), rank=4)
    assert not any(p.name.startswith((".small", "small")) for p in tmp_path.iterdir())
    need = int(re.search(r"need rank (\d+)", str(info.value)).group(1))
    # raising --rank to what it asked for works, and the result is within the limit of PEFT's mix
    result = blend(mix, tmp_path / "enough", base=tiny_models.gguf(arch), rank=need)
    ref_d, ref_l = _weight_deltas(arch, dora, 1.0), _weight_deltas(arch, lora, 0.5)
    for name, delta in _blended_deltas(tmp_path / "enough").items():
        ref = ref_d[name] + ref_l[name]
        assert _rel(delta, ref) <= 1.01e-3, name
    assert max(result.ranks.values()) <= need and result.max_error <= 1e-3


def test_cli_blend_dora_errors_and_reports(tiny_models, tiny_adapters, tmp_path, capsys):
    from adapters_backend.cli.main import main
    dora, base = tiny_adapters.make("llama", "dora"), tiny_models.gguf("llama")
    rc = main(["blend", f"{dora}:1", "--base", str(base), "-o", str(tmp_path / "r4"), "--rank", "4"])
    out, err = capsys.readouterr()
    assert rc == 2 and "raise --rank to" in err and err.count("\n") == 1 and not (tmp_path / "r4").exists()
    rc = main(["blend", f"{dora}:1", "--base", str(base), "-o", str(tmp_path / "full")])
    out, err = capsys.readouterr()
    assert rc == 0 and "max relative error" in out and "(exact)" not in out


def test_the_apps_blend_of_a_dora_adapter_uses_the_loaded_model(tiny_models, tiny_adapters, tmp_path, monkeypatch):
    """Merge → Blend in the app passes the loaded model: a DoRA adapter blends (its exact update needs
    the base weights) instead of failing with "needs the base model"."""
    from desktop_app import tools_access as tools
    monkeypatch.setenv("LORADECK_DATA_DIR", str(tmp_path / "data"))       # the blend goes into a library
    dora, lora = tiny_adapters.make("llama", "dora"), tiny_adapters.make("llama", "lora")
    entries = [(str(dora), 0.7), (str(lora), 0.5)]
    with pytest.raises(MergeError, match="DoRA, which is not low-rank; blending it needs the base"):
        tools.blend(entries, str(tmp_path / "without"), "exact (sum of ranks)")
    out = tools.blend(entries, str(tmp_path / "with"), "exact (sum of ranks)", str(tiny_models.gguf("llama")))
    assert Path(out).is_dir() and (Path(out) / "adapter_model.safetensors").is_file()
