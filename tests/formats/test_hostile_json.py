"""JSON from files that Python parses into things the readers did not expect — 5,000-digit numbers
(int() refuses more than 4,300 digits), arrays nested 100,000 deep, lone UTF-16 surrogates — and
non-finite numbers: each is a LoRA Deck error naming the file, never a crash."""
from __future__ import annotations

import json
import struct

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from adapters_backend.core.base_model import load_base_model
from adapters_backend.errors import AdapterFormatError, BaseModelError
from adapters_backend.formats.registry import read_adapter

HUGE_NUMBER = "1" * 5000
DEEP = "[" * 100_000 + "]" * 100_000


def _tensors():
    name = "base_model.model.model.layers.0.self_attn.q_proj"
    return {f"{name}.lora_A.weight": np.ones((2, 8), np.float32), f"{name}.lora_B.weight": np.ones((8, 2), np.float32)}


@pytest.mark.parametrize("config_text", [
    '{"peft_type": "LORA", "r": ' + HUGE_NUMBER + ', "lora_alpha": 4}',
    '{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "x": ' + DEEP + '}',
    '{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "base_model_name_or_path": "\\ud800"}',
])
def test_adapter_config(tmp_path, config_text):
    folder = tmp_path / "a"
    folder.mkdir()
    save_file(_tensors(), str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(config_text)
    with pytest.raises(AdapterFormatError, match="adapter_config.json: is not valid JSON"):
        read_adapter(folder)


def _safetensors_with_header(path, header_text: str, data: bytes = b"") -> None:
    raw = header_text.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


@pytest.mark.parametrize("header", [
    '{"t": {"dtype": "F32", "shape": [' + HUGE_NUMBER + '], "data_offsets": [0, 4]}}',
    '{"t": {"dtype": "F32", "shape": ' + DEEP + ', "data_offsets": [0, 4]}}',
    '{"lora_unet_x\\ud800.lora_down.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}',
])
def test_safetensors_header(tmp_path, header):
    path = tmp_path / "k.safetensors"
    _safetensors_with_header(path, header, b"\0" * 4)
    with pytest.raises(AdapterFormatError, match="k.safetensors.*corrupt safetensors header: not valid JSON"):
        read_adapter(path)


def test_kohya_network_args_that_do_not_parse_are_left_out(tmp_path):
    tensors = {"lora_unet_model_layers_0_self_attn_q_proj.lora_down.weight": np.ones((2, 8), np.float32),
               "lora_unet_model_layers_0_self_attn_q_proj.lora_up.weight": np.ones((8, 2), np.float32)}
    path = tmp_path / "k.safetensors"
    save_file(tensors, str(path), metadata={"ss_network_args": DEEP, "ss_network_dim": HUGE_NUMBER})
    adapter = read_adapter(path)
    assert "network_args" not in adapter.metadata and len(adapter.modules) == 1


def test_base_model_config_with_a_huge_number(tmp_path):
    from fixtures.small_adapters import write_base
    folder = write_base(tmp_path / "base")
    cfg = json.loads((folder / "config.json").read_text())
    text = json.dumps(cfg).replace('"vocab_size": 256', '"vocab_size": ' + HUGE_NUMBER)
    assert HUGE_NUMBER in text
    (folder / "config.json").write_text(text)
    with pytest.raises(BaseModelError, match="config.json: cannot read config.json"):
        load_base_model(folder)


@pytest.mark.parametrize("alpha", [float("inf"), float("nan")])
def test_gguf_adapter_with_a_non_finite_alpha(tmp_path, alpha):
    path = tmp_path / "lora.gguf"
    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    w.add_tensor("blk.0.attn_q.weight.lora_a", np.ones((2, 8), np.float32))
    w.add_tensor("blk.0.attn_q.weight.lora_b", np.ones((8, 2), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(AdapterFormatError, match="lora.gguf: adapter.lora.alpha must be a finite number"):
        read_adapter(path)
