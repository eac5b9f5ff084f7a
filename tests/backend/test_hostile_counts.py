"""Numbers read from a file are checked before any work proportional to them: a tiny file that claims
300 million layers, 2^63 base-model entries, 2^40 blocks, arrays nested 5,000 deep or an infinite
count ends at once with a LoRA Deck error naming the file and the key (or with a plain answer)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from arch_testlib import llama_gguf_tensors
from fixtures.deadline import deadline as _deadline
from safetensors.numpy import save_file

from adapters_backend.core.base_model import base_info_from_hf, load_base_model
from adapters_backend.errors import AdapterFormatError, BaseModelError
from adapters_backend.formats.registry import read_adapter
from adapters_backend.gguf.header import GGUFError, read_header
from adapters_backend.report.inspect import inspect_adapter


def deadline(seconds: float = 20):
    """Fail instead of hanging: every case here used to run for minutes (or forever)."""
    return _deadline(seconds)


def _peft(folder: Path, modules: list[str]) -> Path:
    folder.mkdir(parents=True)
    t = {}
    for m in modules:
        t[f"base_model.model.{m}.lora_A.weight"] = np.ones((2, 8), np.float32)
        t[f"base_model.model.{m}.lora_B.weight"] = np.ones((8, 2), np.float32)
    save_file(t, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4}))
    return folder


# ------------------------------------------------------------------------------ adapter module names
def test_inspect_of_an_adapter_claiming_300_million_layers(tmp_path):
    """The issue's case: inspect built every architecture table out to the largest layer number."""
    adapter = _peft(tmp_path / "deep", ["model.layers.0.self_attn.q_proj", "model.layers.300000000.self_attn.q_proj"])
    with deadline():
        report = inspect_adapter(adapter)
    assert report["layers"] == [0, 300000000] and report["module_count"] == 2
    # the guess still works where it did: a Phi-3 adapter (fused qkv_proj) is recognised
    phi3 = _peft(tmp_path / "phi3", ["model.layers.0.self_attn.qkv_proj", "model.layers.31.mlp.gate_up_proj"])
    assert inspect_adapter(phi3)["architecture"] == "phi3"


def test_huge_digit_runs_in_module_names_are_no_layer_index(tmp_path):
    digits = "7" * 5000                      # int() of more than 4300 digits raises in Python
    adapter = _peft(tmp_path / "digits", [f"model.layers.{digits}.self_attn.q_proj", "model.layers.1.mlp.up_proj"])
    with deadline():
        report = inspect_adapter(adapter)
    assert report["layers"] == [1] and report["module_count"] == 2


def test_kohya_stems_with_a_huge_block_number(tmp_path):
    tensors = {}
    for block in (0, 99998, 123456789):
        stem = f"lora_unet_model_layers_{block}_self_attn_q_proj"
        tensors[f"{stem}.lora_down.weight"] = np.ones((2, 8), np.float32)
        tensors[f"{stem}.lora_up.weight"] = np.ones((8, 2), np.float32)
    stem = "lora_unet_model_layers_" + "9" * 5000 + "_self_attn_q_proj"
    tensors[f"{stem}.lora_down.weight"] = np.ones((2, 8), np.float32)
    tensors[f"{stem}.lora_up.weight"] = np.ones((8, 2), np.float32)
    path = tmp_path / "k.safetensors"
    save_file(tensors, str(path))
    with deadline():
        adapter = read_adapter(path)
    assert {m.layer for m in adapter} == {0, 99998, 123456789}
    assert any("not matched" in w for w in adapter.warnings)


# ------------------------------------------------------------------------------------- GGUF models
def _gguf_model(path: Path, overrides: dict, n_layers: int = 2) -> Path:
    """A small Llama GGUF model (tensors of `n_layers` blocks) whose metadata `overrides` replace or add
    keys: {key: (GGUFValueType, value)}."""
    w = gguf.GGUFWriter(str(path), arch="llama")
    T = gguf.GGUFValueType
    meta = {"general.name": (T.STRING, "hostile"), "llama.block_count": (T.UINT32, n_layers),
            "llama.embedding_length": (T.UINT32, 32), "llama.feed_forward_length": (T.UINT32, 64),
            "llama.attention.head_count": (T.UINT32, 4), "llama.attention.head_count_kv": (T.UINT32, 2)}
    meta.update(overrides)
    for key, (vtype, value) in meta.items():
        w.add_key_value(key, value, vtype)
    for name, shape in llama_gguf_tensors(n_layers=n_layers).items():
        w.add_tensor(name, np.zeros(shape, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_model_claiming_2_63_base_models(tmp_path):
    T = gguf.GGUFValueType
    path = _gguf_model(tmp_path / "m.gguf", {"general.base_model.count": (T.UINT64, 2**63),
                                             "general.base_model.0.repo_url": (T.STRING, "https://huggingface.co/a/b")})
    with deadline():
        base = load_base_model(path)
    assert base.upstream_ids == ["a/b"]


@pytest.mark.parametrize("key, value", [("general.base_model.count", float("inf")),
                                        ("llama.block_count", float("inf")),
                                        ("llama.expert_count", float("nan")),
                                        ("llama.embedding_length", float("-inf"))])
def test_gguf_model_with_a_non_finite_count_is_refused_naming_the_key(tmp_path, key, value):
    path = _gguf_model(tmp_path / "m.gguf", {key: (gguf.GGUFValueType.FLOAT64, value)})
    with pytest.raises(BaseModelError, match=rf"m.gguf: {key} is {value}; it must be a finite number"):
        load_base_model(path)


@pytest.mark.parametrize("overrides, message", [
    ({"llama.block_count": (gguf.GGUFValueType.UINT64, 2**40)}, "claims 1099511627776 layers"),
    ({"llama.block_count": (gguf.GGUFValueType.UINT32, 500)}, "claims 500 layers but holds 21 tensors"),
    ({"llama.expert_count": (gguf.GGUFValueType.UINT32, 10**6)}, "claims 1000000 experts"),
])
def test_gguf_model_with_absurd_counts_is_refused(tmp_path, overrides, message):
    path = _gguf_model(tmp_path / "m.gguf", overrides)
    with deadline(), pytest.raises(BaseModelError, match=message):
        load_base_model(path).module_names()


@pytest.mark.parametrize("field, value, message", [
    ("num_hidden_layers", float("inf"), "num_hidden_layers is inf"),
    ("num_hidden_layers", 10**9, "claims 1000000000 layers"),
    ("num_local_experts", 2**31, "experts"),
])
def test_hf_config_with_absurd_counts_is_refused(field, value, message):
    config = {"model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "hidden_size": 32,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
              "intermediate_size": 64, "num_local_experts": 4}
    config[field] = value
    with deadline(), pytest.raises(BaseModelError, match=message):
        base_info_from_hf(config).module_names()


# ------------------------------------------------------------------------------------ GGUF headers
def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _raw_gguf(kv: list[bytes], tensors: bytes = b"", n_tensors: int = 0) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", 3, n_tensors, len(kv)) + b"".join(kv) + tensors


def _nested_array(depth: int) -> bytes:
    """An array of an array of … of an empty uint32 array."""
    return struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * (depth - 1) + struct.pack("<IQ", 4, 0)


def test_deeply_nested_arrays_are_refused_not_a_recursion_error(tmp_path):
    kv = [_s("general.architecture") + struct.pack("<I", 8) + _s("llama"),
          _s("general.type") + struct.pack("<I", 8) + _s("adapter"),
          _s("adapter.type") + struct.pack("<I", 8) + _s("lora"),
          _s("evil.nesting") + _nested_array(5000)]
    path = tmp_path / "nested.gguf"
    path.write_bytes(_raw_gguf(kv))
    with pytest.raises(GGUFError, match="nested more than 8 deep"):
        read_header(path)
    with pytest.raises(AdapterFormatError, match="nested.gguf: is not a readable GGUF file.*nested more than 8"):
        read_adapter(path)
    with pytest.raises(BaseModelError, match="nested more than 8 deep"):
        load_base_model(path)


@pytest.mark.parametrize("alignment, vtype", [(0, 4), (3, 4), (1.5, 6), ("32", 8)])
def test_header_refuses_a_bad_alignment(tmp_path, alignment, vtype):
    value = {4: lambda v: struct.pack("<I", v), 6: lambda v: struct.pack("<f", v), 8: _s}[vtype](alignment)
    path = tmp_path / "a.gguf"
    path.write_bytes(_raw_gguf([_s("general.alignment") + struct.pack("<I", vtype) + value]) + b"\0" * 64)
    with pytest.raises(GGUFError, match="general.alignment .* is not a power of two"):
        read_header(path)


def test_header_refuses_unknown_tensor_sizes_counts_beyond_the_file_and_empty_files(tmp_path):
    info = _s("blk.0.attn_q.weight") + struct.pack("<I", 2) + struct.pack("<QQ", 4, 4) + struct.pack("<IQ", 999, 0)
    path = tmp_path / "t.gguf"
    path.write_bytes(_raw_gguf([], info, n_tensors=1) + b"\0" * 128)
    head = read_header(path)      # llama.cpp may know the type: its size is asked only when needed
    with pytest.raises(GGUFError, match="unknown type 999"):
        _ = head.tensors["blk.0.attn_q.weight"].nbytes
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**62, 2**62) + b"\0" * 64)
    with deadline(), pytest.raises(GGUFError, match=r"more than the\s+file holds"):
        read_header(path)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(GGUFError, match="too small"):
        read_header(empty)


def test_kohya_stem_lookup_gives_what_the_expanded_tables_give():
    """Kohya names are resolved through stem templates (no block-by-block expansion): for every
    table, the answer for each stem equals that of the fully expanded stem map."""
    import random as _random

    from adapters_backend.arch.name_map import hf_module_names
    from adapters_backend.arch.registry import all_archs
    from loradeck_format_kohya.names import _shape, _table_map, stem_map

    rng = _random.Random(3)
    for spec in all_archs():
        full = stem_map(hf_module_names(spec, 12))
        stems = rng.sample(sorted(full), min(400, len(full)))
        stems += [s.replace("_1_", "_01_") for s in stems[:20]] + [s + "_x" for s in stems[:20]]
        stems += ["lora_unet_junk_3_q", "lora_te_model_layers_99999999999_self_attn_q_proj"]
        got = _table_map(spec, stems, {s: _shape(s) for s in stems})
        expected = {s: full[s] for s in stems if s in full}
        assert got == expected, spec.id


@pytest.mark.parametrize("architectures", [1.5, None, {"a": 1}, "LlamaForCausalLM", [3, None]])
def test_hf_config_with_architectures_of_the_wrong_type(architectures):
    """A fuzzer finding: `architectures: 1.5` raised TypeError out of base_info_from_hf."""
    config = {"model_type": "llama", "architectures": architectures, "hidden_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 4, "vocab_size": 100}
    assert base_info_from_hf(config).arch.id == "llama"
    del config["model_type"]
    with pytest.raises(BaseModelError, match="unsupported architecture"):
        base_info_from_hf(config)
