"""Bad adapters are refused with an error naming the file and the problem (synthetic files, no torch)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from safetensors.numpy import save_file

from adapters_backend.errors import AdapterFormatError, UnsafeFileError
from adapters_backend.formats.registry import read_adapter


def _peft(folder, config=None, tensors=None):
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}
    cfg.update(config or {})
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    if tensors is None:
        tensors = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": np.ones((2, 8), np.float32),
                   "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": np.ones((8, 2), np.float32)}
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    return folder


class _Evil:
    """Unpickling this runs `open(marker, "w")` — exactly what a malicious adapter_model.bin would do."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_malicious_pickle_executes_nothing(tmp_path, monkeypatch):
    import pickle
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    folder, marker = tmp_path / "evil", tmp_path / "pwned"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4}))
    (folder / "adapter_model.bin").write_bytes(pickle.dumps({"x": _Evil(marker)}))
    with pytest.raises(UnsafeFileError, match="adapter_model.bin.*weights-only loader refuses") as info:
        read_adapter(folder)
    assert not marker.exists()
    _says_never_weights_only_false(str(info.value))


def _says_never_weights_only_false(message):
    """torch's own refusal suggests retrying with weights_only=False; ours must say the opposite."""
    assert "Do not open it with weights_only=False: that would run any code it carries" in message
    assert "will likely succeed" not in message and "Re-running" not in message
    assert "add_safe_globals" not in message and "\n" not in message


def test_a_torch_save_pickle_with_a_class_is_refused_with_the_reason(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "classy"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4}))
    torch.save({"x": torch.zeros(2), "extra": _Evil(tmp_path / "never")}, folder / "adapter_model.bin")
    with pytest.raises(UnsafeFileError, match=r"refuses \(UnpicklingError: Unsupported global: GLOBAL (io|builtins).open "
                                              r"was not an allowed global by default\); nothing in it was run") as info:
        read_adapter(folder)
    _says_never_weights_only_false(str(info.value))
    assert not (tmp_path / "never").exists()


def test_refusal_reason_keeps_torchs_reason_only():
    from adapters_backend.formats.safe_pickle import REFUSED, refusal_reason
    torch_text = ("Weights only load failed. In PyTorch 2.6, we changed the default value of the `weights_only` "
                  "argument in `torch.load` from `False` to `True`. Re-running `torch.load` with `weights_only` set "
                  "to `False` will likely succeed, but it can result in arbitrary code execution. Do it only if you "
                  "got the file from a trusted source.\nPlease file an issue with the following so that we can make "
                  "`weights_only=True` compatible with your use case: WeightsUnpickler error: \n\nUnsupported "
                  "operand 149\n\nCheck the documentation of torch.load to learn more about types accepted by default "
                  "with weights_only https://pytorch.org/docs/stable/generated/torch.load.html.")
    stderr = f"some warning\n{REFUSED}{json.dumps('UnpicklingError: ' + torch_text)}\nmore noise\n"
    assert refusal_reason(stderr) == "UnpicklingError: Unsupported operand 149"
    odd = f"{REFUSED}{json.dumps('UnpicklingError: Weights only load failed; try weights_only=False')}"
    assert refusal_reason(odd) == "it holds more than plain tensors"
    assert refusal_reason("Traceback …\nImportError: no torch\n") == "ImportError: no torch"


def test_a_plain_tensor_pickle_is_converted_and_read(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    st = _peft(tmp_path / "st")
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "adapter_config.json").write_text((st / "adapter_config.json").read_text())
    from safetensors.torch import load_file
    torch.save(load_file(st / "adapter_model.safetensors"), folder / "adapter_model.bin")
    a, b = read_adapter(folder), read_adapter(st)
    assert any("weights-only loader" in w for w in a.warnings)
    name = "model.layers.0.self_attn.q_proj"
    assert np.array_equal(a.tensors(name)["B"], b.tensors(name)["B"]) and a.modules[name].scale == 2.0


def _pickled_adapter(folder, tensors, **save_options):
    torch = pytest.importorskip("torch")
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4}))
    torch.save(tensors, folder / "adapter_model.bin", **save_options)
    return folder


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "pre-1.6 format"])
def test_a_pickle_whose_tensor_repeats_a_few_bytes_is_refused_before_building_it(tmp_path, monkeypatch, zipped):
    """torch.save keeps views: 4 bytes expanded with a stride of 0 read as a 256 MB tensor (a few KB
    file took 1.6 GB of memory and of the cache before)."""
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    name = "base_model.model.model.layers.0.self_attn.q_proj"
    folder = _pickled_adapter(tmp_path / "x", {f"{name}.lora_A.weight": torch.zeros(1).expand(8000, 8000),
                                               f"{name}.lora_B.weight": torch.zeros(8, 2)},
                              _use_new_zipfile_serialization=zipped)
    with pytest.raises(UnsafeFileError, match=r"adapter_model.bin: holds tensors that would take 256.0 MB from a "
                                              r"file of [\d.]+ k?B: a tensor repeats the same data \(a view with a "
                                              r"stride of 0"):
        read_adapter(folder)
    assert not list((tmp_path / "cache").rglob("*.safetensors"))


def test_a_compressed_torch_zip_is_refused_without_unpacking_it(tmp_path, monkeypatch):
    """torch.load inflates deflated records: 64 KB of zip read as 64 MB (any ratio a zip allows)."""
    import zipfile
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    stored = _pickled_adapter(tmp_path / "stored", {"base_model.model.x.lora_A.weight": torch.zeros(16_000_000)})
    folder = tmp_path / "bomb"
    folder.mkdir()
    (folder / "adapter_config.json").write_text((stored / "adapter_config.json").read_text())
    with zipfile.ZipFile(stored / "adapter_model.bin") as src, \
            zipfile.ZipFile(folder / "adapter_model.bin", "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert torch.load(folder / "adapter_model.bin", weights_only=True)  # torch itself reads it all
    with pytest.raises(UnsafeFileError, match=r"adapter_model.bin: is a compressed torch file that unpacks to 64.0 MB "
                                              r"from [\d.]+ kB \(torch.save does not compress\); refused without "
                                              r"unpacking it"):
        read_adapter(folder)


def test_a_pre_1_6_pickle_whose_data_looks_like_a_zip_end_is_read(tmp_path, monkeypatch):
    """zipfile.is_zipfile() finds a zip's end record anywhere in the last 64 KB; torch.load (and the
    size check) look at the first bytes only, so tensor data that happens to hold one is no zip."""
    import struct
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    name = "base_model.model.model.layers.0.self_attn.q_proj"
    end = b"PK\x05\x06" + struct.pack("<4H2IH", 0, 0, 1, 1, 46, 0, 0)   # one entry, its directory garbage
    a = torch.frombuffer(bytearray(end + bytes(64 - len(end))), dtype=torch.float32).reshape(2, 8)
    folder = _pickled_adapter(tmp_path / "old", {f"{name}.lora_A.weight": a, f"{name}.lora_B.weight": torch.ones(8, 2)},
                              _use_new_zipfile_serialization=False)
    import zipfile
    assert zipfile.is_zipfile(folder / "adapter_model.bin")
    adapter = read_adapter(folder)
    assert adapter.modules["model.layers.0.self_attn.q_proj"].scale == 2.0


def test_non_lora_peft_type(tmp_path):
    with pytest.raises(AdapterFormatError, match="IA3 is not a LoRA-family adapter"):
        read_adapter(_peft(tmp_path / "ia3", {"peft_type": "IA3"}))


@pytest.mark.parametrize("r, said", [(4, "4"), (2.5, "2.5"), (1e308, "1e+308")])
def test_rank_in_config_and_tensors_disagree(tmp_path, r, said):
    """A rank of 2.5 is not the tensors' 2 (it was taken as int(2.5) = 2 and scaled by alpha / 2.5)."""
    with pytest.raises(AdapterFormatError, match=rf"q_proj: tensors have rank 2 but the config gives rank {re.escape(said)} "):
        read_adapter(_peft(tmp_path / "r", {"r": r}))


def test_factor_shapes_that_do_not_fit(tmp_path):
    bad = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": np.ones((2, 8), np.float32),
           "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": np.ones((8, 3), np.float32)}
    with pytest.raises(AdapterFormatError, match="adapter_model.safetensors.*lora_A has 2 rows but lora_B has 3"):
        read_adapter(_peft(tmp_path / "s", tensors=bad))


@pytest.mark.parametrize("tokens", [-1e-9, "x", [1, -2], [1, True], [2**32]])
def test_alora_invocation_tokens_that_are_not_token_ids(tmp_path, tokens):
    """Each of these passed reading and then stopped the first answer of the PyTorch engine with a
    TypeError naming nothing (found by fuzzing adapter configs)."""
    with pytest.raises(AdapterFormatError, match=r"adapter_config.json: alora_invocation_tokens must be a list of "
                                                 r"token ids, not"):
        read_adapter(_peft(tmp_path / "a", {"alora_invocation_tokens": tokens}))
    assert read_adapter(_peft(tmp_path / "ok", {"alora_invocation_tokens": [5, 6]})).alora_invocation_tokens == [5, 6]


def test_bad_pattern_regex(tmp_path):
    with pytest.raises(AdapterFormatError, match=r"adapter_config.json: alpha_pattern: key 'q_proj\(' is not a "
                                                 r"module-name pattern: missing '\)'"):
        read_adapter(_peft(tmp_path / "p", {"alpha_pattern": {"q_proj(": 3}}))


def test_rank_and_alpha_patterns_first_match_wins(tmp_path):
    a = read_adapter(_peft(tmp_path / "ok", {"rank_pattern": {}, "alpha_pattern": {"q_proj": 8, "layers.0.self_attn.q_proj": 1}}))
    assert a.modules["model.layers.0.self_attn.q_proj"].scale == 4.0      # 8 / 2: the first key wins, as in PEFT


def test_kohya_names_of_no_known_model(tmp_path):
    f = tmp_path / "odd.safetensors"
    save_file({"lora_te_encoder_block_0_attention_query.lora_down.weight": np.ones((2, 8), np.float32),
               "lora_te_encoder_block_0_attention_query.lora_up.weight": np.ones((8, 2), np.float32)}, str(f))
    with pytest.raises(AdapterFormatError, match=r"odd.safetensors.*none of its 1 module names match.*give the base model"):
        read_adapter(f)


def test_kohya_alpha_zero_means_dim_and_unmatched_modules_are_reported(tmp_path):
    f = tmp_path / "k.safetensors"
    stem = "lora_te_model_layers_0_self_attn_q_proj"
    save_file({f"{stem}.lora_down.weight": np.ones((4, 8), np.float32),
               f"{stem}.lora_up.weight": np.ones((8, 4), np.float32), f"{stem}.alpha": np.array(0.0, np.float32),
               "lora_te_something_else.lora_down.weight": np.ones((4, 8), np.float32),
               "lora_te_something_else.lora_up.weight": np.ones((8, 4), np.float32)}, str(f))
    a = read_adapter(f)
    assert a.modules["model.layers.0.self_attn.q_proj"].scale == 1.0
    assert any("not matched and skipped: lora_te_something_else" in w for w in a.warnings)


def test_a_gguf_base_model_is_not_an_adapter(tmp_path):
    import gguf
    f = tmp_path / "model.gguf"
    w = gguf.GGUFWriter(str(f), arch="llama")
    w.add_type(gguf.GGUFType.MODEL)
    w.add_tensor("token_embd.weight", np.ones((4, 4), np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    with pytest.raises(AdapterFormatError, match="model.gguf: is a GGUF file but a model, not a LoRA adapter "
                                                 r"\(general.type = 'model', no adapter.type\)"):
        read_adapter(f)


def test_no_address_space_left_to_map_the_weights_is_a_format_error(tmp_path, monkeypatch):
    """mmap fails with ENOMEM when the process is out of address space (a fuzzer finding under a
    1 GB limit): the read fails naming the file, not with a bare OSError."""
    import errno
    import mmap as mmap_module

    from adapters_backend.formats import safetensors_io

    adapter = read_adapter(_peft(tmp_path / "p"))

    def no_memory(*args, **kwargs):
        raise OSError(errno.ENOMEM, "Cannot allocate memory")
    monkeypatch.setattr(safetensors_io.mmap, "mmap", no_memory)
    with pytest.raises(AdapterFormatError, match="adapter_model.safetensors: cannot read file: Cannot allocate memory"):
        adapter.tensors(next(iter(adapter)))
    assert safetensors_io.mmap is mmap_module
