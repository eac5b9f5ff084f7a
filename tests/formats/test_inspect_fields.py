"""`loradeck inspect --json` on real adapters: every field against what the test made and what PEFT itself
computes (its per-module `scaling`, its parameter count)."""
from __future__ import annotations

import json
import math

import pytest

from adapters_backend.cli.main import main
from adapters_backend.formats.registry import content_sha256, content_size

CASES = [("llama", "patterns"), ("llama", "rslora"), ("gpt2", "lora"), ("llama", "loha"), ("llama", "lokr"),
         ("qwen2", "adalora"), ("llama", "dora"), ("llama", "embed")]


def _inspect(path, capsys) -> dict:
    assert main(["inspect", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _peft_truth(arch, folder):
    """Per-module (scaling, rank, trainable parameter count) from PEFT's own loaded model."""
    import warnings

    import torch
    from fixtures.tiny_gguf import tiny_hf_model
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base = AutoModelForCausalLM.from_pretrained(tiny_hf_model(arch), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = PeftModel.from_pretrained(base, folder)
    truth = {}
    for name, layer in pm.base_model.model.named_modules():
        scaling = getattr(layer, "scaling", None)
        if isinstance(scaling, dict) and "default" in scaling:
            s = scaling["default"]
            if hasattr(layer, "ranknum"):                   # AdaLoRA divides by ranknum at run time
                s = s / (float(layer.ranknum["default"]) + 1e-5)
            truth[name] = s
    return truth


@pytest.mark.parametrize("arch,variant", CASES, ids=[f"{a}-{v}" for a, v in CASES])
def test_peft_fields(arch, variant, tiny_adapters, capsys):
    from safetensors import safe_open
    folder = tiny_adapters.make(arch, variant)
    cfg = json.loads((folder / "adapter_config.json").read_text())
    report = _inspect(folder, capsys)
    assert report["schema"] == "loradeck.inspect/1" and report["format"] == "peft"
    assert report["base_model"] == cfg["base_model_name_or_path"]
    assert report["sha256"] == content_sha256(folder) and report["size_bytes"] == content_size(folder)
    with safe_open(folder / "adapter_model.safetensors", "np") as f:
        keys = list(f.keys())
        assert report["parameters"] == sum(math.prod(f.get_slice(k).get_shape()) for k in keys
                                           if ".base_layer." not in k)
    truth = _peft_truth(arch, folder)
    mods = {m["name"]: m for m in report["modules"]}
    for name, s in truth.items():
        assert mods[name]["scale"] == pytest.approx(s, rel=1e-6), name
    assert set(report["layers"]) == {0, 1}
    expected_variant = {"dora": "dora", "loha": "loha", "lokr": "lokr", "adalora": "adalora"}.get(variant, "lora")
    assert expected_variant in report["variants"]
    targets = cfg["target_modules"]
    targets = targets if isinstance(targets, list) else [targets]
    assert set(report["target_modules"]) == set(targets)
    assert report["module_count"] == len(mods) == len(truth)
    assert report["dtypes"] == {"F32": len(mods)}
    if variant == "patterns":
        assert report["rank"] == {"min": 2, "max": 8, "distinct": 3}
    if variant == "rslora":
        assert report["scale"] == pytest.approx(cfg["lora_alpha"] / math.sqrt(cfg["r"]))
    # rsLoRA is named (its own key: `variants` keeps the kinds schema 1 readers know)
    assert report["rslora"] == ("all" if variant == "rslora" else "none")
    assert all(m["rslora"] is (variant == "rslora") for m in report["modules"])
    if arch == "gpt2":
        assert all(m["fan_in_fan_out"] for m in report["modules"])


def test_kohya_and_ludwig_fields(tiny_adapters, capsys):
    k = _inspect(tiny_adapters.kohya("llama", "patterns"), capsys)
    p = _inspect(tiny_adapters.make("llama", "patterns"), capsys)
    assert k["format"] == "kohya" and k["module_count"] == p["module_count"]
    assert {m["name"]: round(m["scale"], 6) for m in k["modules"]} == {m["name"]: round(m["scale"], 6) for m in p["modules"]}
    lud = _inspect(tiny_adapters.ludwig("llama", "rslora"), capsys)
    assert lud["format"] == "ludwig" and lud["base_model"].endswith("hf-llama")
    assert lud["rslora"] == "all" and lud["variants"] == ["lora"]


def test_text_report_names_rslora(tiny_adapters, capsys):
    assert main(["inspect", str(tiny_adapters.make("llama", "rslora"))]) == 0
    assert "Variants     lora (rsLoRA: scale = alpha/√r)\n" in capsys.readouterr().out
    assert main(["inspect", str(tiny_adapters.make("llama", "lora"))]) == 0
    assert "Variants     lora\n" in capsys.readouterr().out


def test_text_report_of_a_partly_rslora_adapter():
    from adapters_backend.report.inspect import _variants_text
    mods = [{"rslora": True}, {"rslora": False}, {"rslora": False}]
    report = {"variants": ["lora"], "rslora": "some", "modules": mods, "module_count": 3}
    assert _variants_text(report) == "lora (rsLoRA in 1 of 3 modules: scale = alpha/√r there)"
