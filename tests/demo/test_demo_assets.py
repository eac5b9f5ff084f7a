"""The shipped demo files: present, small, licensed, and the three adapter formats hold the same
LoRA as the llama.cpp GGUF shipped beside them. Needs no torch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader
from safetensors.numpy import load_file

from adapters_backend import demo
from adapters_backend.errors import BaseModelError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging" / "demo"))
from demo_gguf import LINEAR_NAMES, rope_rows_to_gguf  # noqa: E402

MAX_SHIPPED_BYTES = 5_000_000


def _field(reader: GGUFReader, key: str):
    return reader.fields[key].contents()


def test_api_lists_model_and_three_formats():
    assert demo.demo_model_path().suffix == ".gguf"
    adapters = demo.demo_adapters()
    assert [a.name for a in adapters] == ["shout", "pirate", "reverse"]
    assert sorted(a.format for a in adapters) == ["kohya", "ludwig", "peft"]
    for a in adapters:
        name, path, fmt, description = a  # plain 4-tuple for callers that unpack
        assert path.exists() and description
        assert demo.demo_lora_gguf(name).read_bytes()[:4] == b"GGUF"
    assert demo.is_demo_model(demo.demo_model_path())
    assert not demo.is_demo_model(REPO / "pyproject.toml")
    assert "What is the capital of France?" in demo.demo_prompts()
    with pytest.raises(KeyError):
        demo.demo_lora_gguf("nope")


def test_missing_assets_give_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "DEMO_ASSETS", tmp_path)
    demo.demo_manifest.cache_clear()
    try:
        with pytest.raises(BaseModelError, match="demo files are missing"):
            demo.demo_model_path()
    finally:
        demo.demo_manifest.cache_clear()


def test_total_size_and_licence():
    files = [f for f in demo.DEMO_ASSETS.rglob("*") if f.is_file()]
    assert sum(f.stat().st_size for f in files) <= MAX_SHIPPED_BYTES
    notice = (demo.DEMO_ASSETS / "NOTICE.txt").read_text(encoding="utf-8")
    assert "Apache License, Version 2.0" in notice and "synthetic" in notice
    assert demo.demo_manifest()["model"]["license"] == "Apache-2.0"


def test_model_gguf_carries_tokenizer_template_and_licence():
    reader = GGUFReader(demo.demo_model_path())
    assert _field(reader, "general.architecture") == "llama"
    assert _field(reader, "general.license") == "apache-2.0"
    assert _field(reader, "tokenizer.ggml.model") == "llama"
    template = _field(reader, "tokenizer.chat_template")
    assert "<|im_start|>" in template and "add_generation_prompt" in template
    tokens = _field(reader, "tokenizer.ggml.tokens")
    assert len(tokens) == _field(reader, "llama.vocab_size")
    assert tokens[_field(reader, "tokenizer.ggml.eos_token_id")] == "<|im_end|>"
    names = {t.name for t in reader.tensors}
    assert "token_embd.weight" in names and "output.weight" not in names  # tied embeddings
    assert (demo.DEMO_ASSETS / "tokenizer.model").stat().st_size > 0


def _peft_pairs(folder: Path) -> tuple[dict, float]:
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["peft_type"] == "LORA" and not config["use_rslora"] and not config["use_dora"]
    assert config["base_model_name_or_path"] == demo.demo_model_id()
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    pairs = {}
    for key, value in tensors.items():
        module, role = key.removeprefix("base_model.model.").rsplit(".lora_", 1)
        pairs.setdefault(module, {})[role[0]] = value.astype(np.float32)
    return pairs, config["lora_alpha"] / config["r"]


def _kohya_pairs(path: Path) -> tuple[dict, float]:
    tensors = load_file(str(path))
    pairs, scales = {}, set()
    for module in demo_modules():
        stem = "lora_te_" + module.replace(".", "_")
        down, up = tensors[stem + ".lora_down.weight"], tensors[stem + ".lora_up.weight"]
        assert tensors[stem + ".alpha"].shape == ()
        scales.add(float(tensors[stem + ".alpha"]) / down.shape[0])
        pairs[module] = {"A": down.astype(np.float32), "B": up.astype(np.float32)}
    assert len(tensors) == 3 * len(pairs) and len(scales) == 1
    return pairs, scales.pop()


def demo_modules() -> list[str]:
    return [f"model.layers.{i}.{m}" for i in range(4) for m in LINEAR_NAMES]


def _gguf_pairs(path: Path) -> tuple[dict, float]:
    reader = GGUFReader(path)
    assert _field(reader, "general.type") == "adapter" and _field(reader, "adapter.type") == "lora"
    data = {t.name: np.array(t.data, dtype=np.float32) for t in reader.tensors}
    rank = next(iter(data.values())).shape[0]
    return data, _field(reader, "adapter.lora.alpha") / rank


@pytest.mark.parametrize("name", ["shout", "pirate", "reverse"])
def test_each_format_holds_the_shipped_gguf_lora(name):
    adapter = {a.name: a for a in demo.demo_adapters()}[name]
    if adapter.format == "peft":
        pairs, scale = _peft_pairs(adapter.path)
    elif adapter.format == "kohya":
        pairs, scale = _kohya_pairs(adapter.path)
    else:
        hyper = json.loads((adapter.path / "model_hyperparameters.json").read_text(encoding="utf-8"))
        assert hyper["model_type"] == "llm" and hyper["base_model"] == demo.demo_model_id()
        assert hyper["adapter"]["type"] == "lora"
        pairs, scale = _peft_pairs(adapter.path / "model_weights")
        assert scale == hyper["adapter"]["alpha"] / hyper["adapter"]["r"]
    assert sorted(pairs) == sorted(demo_modules())
    gguf_tensors, gguf_scale = _gguf_pairs(demo.demo_lora_gguf(name))
    assert gguf_scale == pytest.approx(scale)
    for module, ab in pairs.items():
        layer, short = module.split(".")[2], LINEAR_NAMES[".".join(module.split(".")[3:])]
        b = ab["B"]
        if short in ("attn_q", "attn_k"):
            b = rope_rows_to_gguf(b, n_heads=4)
        base = f"blk.{layer}.{short}.weight"
        np.testing.assert_allclose(gguf_tensors[base + ".lora_a"], ab["A"], rtol=2e-3, atol=1e-4)
        np.testing.assert_allclose(gguf_tensors[base + ".lora_b"], b, rtol=2e-3, atol=1e-4)
