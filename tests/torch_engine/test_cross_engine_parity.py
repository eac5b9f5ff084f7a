"""`loradeck parity` on tiny models of several architectures: the two engines agree on the base and on the
adapters' effect; a wrong scale on one side is called a mismatch."""
from __future__ import annotations

import json
import shutil

import pytest

from adapters_backend.cli.main import main
from adapters_backend.engines.base import ActiveAdapter

CASES = [("llama", "rslora"), ("qwen2", "dora"), ("gpt2", "lora"), ("phi3", "patterns"), ("gemma", "loha")]


@pytest.mark.parametrize("arch,variant", CASES, ids=[f"{a}-{v}" for a, v in CASES])
def test_parity_command_agrees(arch, variant, tiny_models, tiny_adapters, capsys):
    adapter = tiny_adapters.make(arch, variant)
    code = main(["parity", "--model-gguf", str(tiny_models.gguf(arch)), "--model-hf", str(tiny_models.hf(arch)),
                 "--adapter", f"{adapter}:0.8", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert report["verdict"] == "agree"
    assert report["base_max_diff"] < 1e-3
    assert report["effect_max_diff"] < 1e-2 and report["effect_size"] > 5 * report["effect_max_diff"]


def test_a_wrong_scale_is_a_mismatch(tiny_models, tiny_adapters, tmp_path):
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    from adapters_backend.engines.parity import compare
    from adapters_backend.engines.torch_engine import TorchEngine

    good = tiny_adapters.make("llama", "lora")
    wrong = tmp_path / "wrong"
    shutil.copytree(good, wrong)
    cfg = json.loads((wrong / "adapter_config.json").read_text())
    cfg["lora_alpha"] = cfg["lora_alpha"] * 1.5          # what an rsLoRA/alpha mistake looks like
    (wrong / "adapter_config.json").write_text(json.dumps(cfg))
    lc, te = LlamaCppEngine(n_ctx=256, logits_all=True, fuse_mixes=False), TorchEngine(device="cpu", dtype="float32")
    try:
        lc.load(tiny_models.gguf("llama"))
        te.load(tiny_models.hf("llama"))
        tokens = te.tokenize("hello there, how are you")
        report = compare(lc, te, [ActiveAdapter(str(good), 1.0)], tokens, torch_mix=[ActiveAdapter(str(wrong), 1.0)])
    finally:
        lc.close()
        te.close()
    assert report.verdict == "mismatch"
    assert any("effect differs" in r for r in report.reasons)
