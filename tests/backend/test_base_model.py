"""load_base_model: GGUF files (written here with GGUFWriter, and real llama.cpp conversions) and HF
folders (save_pretrained of tiny models), read from headers only."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from arch_testlib import llama_gguf_tensors, real_model, write_gguf

from adapters_backend.core.base_model import load_base_model
from adapters_backend.errors import BaseModelError


# ------------------------------------------------------------------------------------------- GGUF
@pytest.fixture(scope="module")
def llama_gguf(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "llama.gguf"
    return write_gguf(path, "llama", llama_gguf_tensors(), name="Tiny Llama",
                      base_repos=("meta-llama/Llama-3.2-1B", "acme/tiny-llama"))


def test_gguf_metadata_and_shapes(llama_gguf):
    base = load_base_model(llama_gguf)
    assert base.kind == "gguf" and base.arch.id == "llama" and base.arch_name == "llama"
    assert (base.n_layers, base.hidden, base.n_head, base.n_head_kv, base.vocab) == (2, 32, 4, 2, 100)
    assert base.head_dim == 8 and base.intermediate == 64 and base.n_experts == 0
    assert base.name == "Tiny Llama" and base.file_type == 0
    assert base.upstream_ids == ["meta-llama/Llama-3.2-1B", "acme/tiny-llama"]
    assert base.hparams["llama.block_count"] == 2
    # numpy order = reversed ggml ne: ffn_down is (hidden, ff) = (32, 64), not (64, 32).
    assert base.tensor_shapes["blk.1.ffn_down.weight"] == (32, 64)
    assert base.module_shape("model.layers.1.mlp.down_proj") == (32, 64)
    assert base.module_shape("model.layers.0.self_attn.k_proj") == (16, 32)      # 2 KV heads × 8
    assert base.module_shape("model.embed_tokens") == (100, 32)
    assert base.module_shape("lm_head") == (100, 32) and not base.tied
    assert base.module_shape("model.layers.2.self_attn.q_proj") is None           # no block 2
    assert base.module_shape("model.layers.0.self_attn.q_proj.lora_A") is None
    names = base.module_names()
    assert len(names) == 2 + 2 * 7 and "lm_head" in names
    assert base.transform_hparams() == {"n_head": 4, "n_head_kv": 2, "hidden": 32, "head_dim": 8}


def test_gguf_tied_output_and_vocab_from_embeddings(tmp_path):
    path = write_gguf(tmp_path / "tied.gguf", "qwen2", llama_gguf_tensors(output=False, vocab=120), vocab=120)
    base = load_base_model(path)
    assert base.arch.id == "qwen2" and base.tied and base.vocab == 120
    assert base.module_shape("lm_head") is None and "lm_head" not in base.module_names()


def test_gguf_mixtral_experts(tmp_path):
    path = write_gguf(tmp_path / "moe.gguf", "llama", llama_gguf_tensors(n_experts=4), n_experts=4)
    base = load_base_model(path)
    assert base.arch.id == "mixtral" and base.n_experts == 4          # gguf arch "llama" + expert_count
    assert base.module_shape("model.layers.1.block_sparse_moe.experts.3.w1") == (64, 32)
    assert base.module_shape("model.layers.1.block_sparse_moe.experts.3.w2") == (32, 64)
    assert base.module_shape("model.layers.1.block_sparse_moe.experts.4.w2") is None
    assert base.module_shape("model.layers.0.mlp.experts.down_proj") == (32, 64)
    assert base.module_shape("model.layers.0.mlp.experts.gate_up_proj") == (128, 32)  # split on the GGUF side
    assert base.module_shape("model.layers.0.mlp.gate") == (4, 32)


def test_gguf_fused_qkv_parts_from_hparams(tmp_path):
    t = {"token_embd.weight": (100, 32), "output.weight": (100, 32)}
    for b in range(2):
        t.update({f"blk.{b}.attn_qkv.weight": (96, 32), f"blk.{b}.attn_output.weight": (32, 32),
                  f"blk.{b}.ffn_up.weight": (64, 32), f"blk.{b}.ffn_down.weight": (32, 64)})
    base = load_base_model(write_gguf(tmp_path / "phi2.gguf", "phi2", t, n_head_kv=4))
    assert base.arch.id == "phi2"
    assert base.module_shape("model.layers.0.self_attn.q_proj") == (32, 32)
    assert base.module_shape("model.layers.0.self_attn.v_proj") == (32, 32)
    assert base.module_shape("transformer.h.0.mixer.Wqkv") == (96, 32)


def test_gguf_errors(tmp_path, llama_gguf):
    with pytest.raises(BaseModelError, match="no such file"):
        load_base_model(tmp_path / "missing.gguf")
    adapter = write_gguf(tmp_path / "adapter.gguf", "llama", {"blk.0.attn_q.weight.lora_a": (4, 32)},
                         general_type="adapter")
    with pytest.raises(BaseModelError, match="LoRA adapter"):
        load_base_model(adapter)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    with pytest.raises(BaseModelError, match="GGUF"):
        load_base_model(junk)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(llama_gguf.read_bytes()[:300])
    with pytest.raises(BaseModelError):
        load_base_model(truncated)
    mamba = write_gguf(tmp_path / "mamba.gguf", "mamba", {"token_embd.weight": (100, 32)})
    with pytest.raises(BaseModelError, match=r"unsupported architecture 'mamba'.*gpt2.*llama"):
        load_base_model(mamba)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(BaseModelError, match="not a base model"):
        load_base_model(text)


# ------------------------------------------------------------------------------------------- HF folders
@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    models, out = {}, {}
    for family in ("llama", "gpt2", "bloom", "mixtral", "phi3"):
        models[family] = real_model(family)
        out[family] = root / family
        models[family].save_pretrained(out[family])
    out["llama-sharded"] = root / "llama-sharded"
    models["llama"].save_pretrained(out["llama-sharded"], max_shard_size="20KB")
    return out, models


@pytest.mark.parametrize("family", ["llama", "gpt2", "bloom", "mixtral", "phi3", "llama-sharded"])
def test_hf_folder_shapes_match_the_model(family, hf_folders):
    import torch
    from transformers.pytorch_utils import Conv1D
    folders, models = hf_folders
    model = models[family.removesuffix("-sharded")]
    base = load_base_model(folders[family])
    assert base.kind == "hf" and base.arch.id == family.removesuffix("-sharded")
    assert base.n_layers == 2 and base.hidden == 32 and base.vocab == 100
    checked = 0
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Embedding)):
            want = tuple(mod.weight.shape)
        elif isinstance(mod, Conv1D):                       # stored (in, out); reported (out, in)
            want = tuple(mod.weight.shape[::-1])
        else:
            continue
        if name == "lm_head" and base.tied:
            assert base.module_shape(name) is None
            continue
        assert base.module_shape(name) == want, name
        checked += 1
    assert checked >= 8
    if family == "gpt2":
        assert base.module_shape("transformer.h.0.attn.c_attn") == (96, 32) and base.tied
    if family == "mixtral":   # transformers 5 modules resolved against the legacy per-expert checkpoint
        assert base.module_shape("model.layers.1.mlp.experts.gate_up_proj") == (128, 32)
        assert base.module_shape("model.layers.1.mlp.experts.down_proj") == (32, 64)
        assert base.module_shape("model.layers.1.block_sparse_moe.experts.2.w3") == (64, 32)


def test_hf_folder_errors(tmp_path, hf_folders):
    folders, _ = hf_folders
    with pytest.raises(BaseModelError, match="config.json is missing"):
        load_base_model(tmp_path)
    only_config = tmp_path / "cfg"
    only_config.mkdir()
    shutil.copy(folders["llama"] / "config.json", only_config)
    with pytest.raises(BaseModelError, match="no model.safetensors"):
        load_base_model(only_config)
    (only_config / "model.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(BaseModelError, match="model.safetensors"):
        load_base_model(only_config)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(BaseModelError, match="config.json"):
        load_base_model(bad)
    other = tmp_path / "other"
    shutil.copytree(folders["llama"], other)
    cfg = json.loads((other / "config.json").read_text())
    cfg.update(model_type="t5", architectures=["T5ForConditionalGeneration"])
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BaseModelError, match=r"unsupported architecture 't5'.*Supported:.*llama"):
        load_base_model(other)
    sharded = tmp_path / "sharded"
    shutil.copytree(folders["llama-sharded"], sharded)
    next(sharded.glob("model-00001-*.safetensors")).unlink()
    with pytest.raises(BaseModelError, match="missing"):
        load_base_model(sharded)


@pytest.mark.parametrize("damage", ["trailing", "gap"])
def test_a_checkpoint_whose_tensors_do_not_fill_its_data_is_refused_naming_the_file(tmp_path, hf_folders, damage):
    """Bytes past the last tensor, or between two: the safetensors library (transformers' loading, a
    merge) refuses such a file with an error naming neither the model nor the file; it is refused here."""
    import struct
    folders, _ = hf_folders
    folder = tmp_path / "damaged"
    shutil.copytree(folders["llama"], folder)
    weights = folder / "model.safetensors"
    raw = weights.read_bytes()
    if damage == "trailing":
        raw += b"\0" * 8
    else:                                    # every tensor moved 8 bytes on: a gap before the first
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n])
        for name, info in header.items():
            if name != "__metadata__":
                info["data_offsets"] = [o + 8 for o in info["data_offsets"]]
        blob = json.dumps(header).encode()
        blob += b" " * (-len(blob) % 8)
        raw = struct.pack("<Q", len(blob)) + blob + b"\0" * 8 + raw[8 + n:]
    weights.write_bytes(raw)
    with pytest.raises(BaseModelError, match=r"damaged: model.safetensors: its tensors do not fill its data "
                                             r"exactly \(from byte \d+ of \d+ on\)"):
        load_base_model(folder)


def test_every_reader_of_a_safetensors_index_refuses_a_shard_outside_the_folder(tmp_path, hf_folders):
    """The index is input: model loading, the converter's tensor reader and the merge all read it
    through one checker, so a shard named ../x is refused before any of them opens it."""
    from adapters_backend.convert.base_weights import HFTensors
    from adapters_backend.core.base_model import checkpoint_shards
    folders, _ = hf_folders
    sharded = tmp_path / "model" / "sharded"
    shutil.copytree(folders["llama-sharded"], sharded)
    shards, weight_map = checkpoint_shards(sharded)
    assert len(shards) > 1 and set(weight_map.values()) == set(shards)
    outside = tmp_path / "model" / "outside.safetensors"
    shutil.copy(shards[0], outside)                      # a real shard, one folder up
    index = sharded / "model.safetensors.index.json"
    doc = json.loads(index.read_text())
    doc["weight_map"] = {key: "../outside.safetensors" for key in doc["weight_map"]}
    index.write_text(json.dumps(doc))
    for read in (checkpoint_shards, load_base_model, HFTensors):
        with pytest.raises(BaseModelError, match="'../outside.safetensors' is not a file name inside the model folder"):
            read(sharded)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_sharded_model_in_the_hugging_face_cache_layout_loads(tmp_path, hf_folders):
    """In the HF cache a snapshot folder holds symbolic links into ../../blobs: a shard name is
    checked as a name (one plain component), not by where its link leads."""
    from adapters_backend.convert.base_weights import HFTensors
    from adapters_backend.core.base_model import checkpoint_shards
    folders, _ = hf_folders
    repo = tmp_path / "models--org--tiny"
    snapshot, blobs = repo / "snapshots" / "abc123", repo / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    for i, f in enumerate(sorted(folders["llama-sharded"].iterdir())):
        shutil.copy(f, blobs / f"blob{i}")
        try:
            os.symlink(os.path.relpath(blobs / f"blob{i}", snapshot), snapshot / f.name)
        except OSError:
            pytest.skip("this system does not allow symbolic links")
    want = load_base_model(folders["llama-sharded"]).module_names()
    assert load_base_model(snapshot).module_names() == want
    assert len(checkpoint_shards(snapshot)[0]) > 1 and HFTensors(snapshot).keys()


def test_hf_reads_headers_only(hf_folders, tmp_path):
    """Tensor data is never read: a folder whose data bytes are garbage loads the same."""
    folders, _ = hf_folders
    copy = tmp_path / "garbage"
    shutil.copytree(folders["llama"], copy)
    st = copy / "model.safetensors"
    raw = bytearray(st.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    raw[8 + n:] = np.full(len(raw) - 8 - n, 0xFF, np.uint8).tobytes()
    st.write_bytes(bytes(raw))
    assert load_base_model(copy).module_names() == load_base_model(folders["llama"]).module_names()


# ------------------------------------------------------------------------------------------- real conversions
def test_real_llama_cpp_conversions_agree_with_hf(tiny_models_or_skip):
    """Every module of each tiny HF model has the same (out, in) in llama.cpp's own conversion of it,
    found through the tables — the name map and shapes match the real converter output."""
    from fixtures.tiny_gguf import ARCHS, tiny_gguf_bases, tiny_hf_model
    ggufs = tiny_gguf_bases(ARCHS)
    for arch in ARCHS:
        hf = load_base_model(tiny_hf_model(arch))
        gg = load_base_model(ggufs[arch])
        assert gg.arch.gguf_arch == hf.arch.gguf_arch, arch
        assert (gg.n_layers, gg.hidden, gg.n_head, gg.n_head_kv) == (hf.n_layers, hf.hidden, hf.n_head, hf.n_head_kv)
        hf_names = hf.module_names()
        assert hf_names, arch
        for name in hf_names:
            if name == "lm_head" and gg.tied:
                continue
            assert gg.module_shape(name) == hf.module_shape(name), (arch, name)
        # Every 2-D weight of the GGUF that a LoRA could target is reachable from an HF name.
        reachable = {gg.match(n).gguf for n in gg.module_names()}
        for tname, shape in gg.tensor_shapes.items():
            if len(shape) == 2 and tname.endswith(".weight") and "norm" not in tname:
                assert tname.removesuffix(".weight") in reachable, (arch, tname)


def test_real_fused_qkv_conversion(tiny_models_or_skip):
    from fixtures.tiny_gguf import tiny_gguf_base, tiny_hf_model
    hf = load_base_model(tiny_hf_model("phi2"))
    gg = load_base_model(tiny_gguf_base("phi2", fuse_qkv=True))
    assert "blk.0.attn_qkv.weight" in gg.tensor_shapes and "blk.0.attn_q.weight" not in gg.tensor_shapes
    for part in ("q_proj", "k_proj", "v_proj"):
        name = f"model.layers.0.self_attn.{part}"
        assert gg.module_shape(name) == hf.module_shape(name)


@pytest.fixture(scope="module")
def tiny_models_or_skip():
    pytest.importorskip("fixtures.tiny_gguf")
    from fixtures.tiny_gguf import llama_cpp_src
    if llama_cpp_src() is None:
        pytest.skip("llama.cpp sources not found")
