"""Independent check of the shipped llama.cpp LoRA GGUFs: llama.cpp's own converter, run on the
shipped PEFT folder and Ludwig weights, gives adapters that make llama.cpp write the same answers.
(The Kohya file holds the same tensors under other names; test_demo_assets compares them.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapters_backend import demo

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging" / "demo"))
from demo_llama import DemoChat  # noqa: E402
from measure_demo import EVAL_QUESTIONS  # noqa: E402

pytest.importorskip("llama_cpp")
pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def hf_config_dir(tmp_path_factory) -> Path:
    """config.json of the demo model, as the converter's --base (it needs nothing else)."""
    import torch
    from demo_training import ModelShape, new_base_model

    with torch.device("meta"):
        model = new_base_model(ModelShape())
    folder = tmp_path_factory.mktemp("hf_base")
    # model.save_pretrained records the class; saving the config alone (no weights needed) must say it
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(folder)
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    return folder


@pytest.mark.parametrize("name", ["shout", "reverse"])
def test_llama_cpp_converter_agrees_with_shipped_gguf(name, llama_cpp_src, hf_config_dir, tmp_path):
    adapter = {a.name: a for a in demo.demo_adapters()}[name]
    peft_dir = adapter.path if adapter.format == "peft" else adapter.path / "model_weights"
    out = tmp_path / f"{name}.gguf"
    subprocess.run([sys.executable, str(llama_cpp_src / "convert_lora_to_gguf.py"), "--base", str(hf_config_dir),
                    "--outtype", "f16", "--outfile", str(out), str(peft_dir)],
                   check=True, capture_output=True, timeout=300)
    chat = DemoChat(demo.demo_model_path())
    try:
        chat.load_adapter("theirs", out)
        chat.load_adapter("ours", demo.demo_lora_gguf(name))
        for strength in (0.5, 1.0):
            assert chat.answers(EVAL_QUESTIONS, {"theirs": strength}) == \
                chat.answers(EVAL_QUESTIONS, {"ours": strength})
    finally:
        chat.close()
