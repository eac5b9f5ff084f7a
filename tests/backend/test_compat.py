"""check_compatibility: compatible / partial (each skipped module says why) / incompatible (each reason),
for llama.cpp and torch, from shapes and configs only. Adapters are real PEFT LoRAs on tiny models
(read back by hand into the canonical form) or built directly with DictSource."""
from __future__ import annotations

import json

import pytest
from arch_testlib import llama_gguf_tensors, make_adapter, peft_adapter, real_model, write_gguf

from adapters_backend.core.base_model import load_base_model
from adapters_backend.core.compat import check_compatibility

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("bases")
    out = {
        "gguf": load_base_model(write_gguf(root / "llama.gguf", "llama", llama_gguf_tensors(),
                                           base_repos=("acme/tiny-llama",))),
        "gguf-tied": load_base_model(write_gguf(root / "tied.gguf", "llama", llama_gguf_tensors(output=False))),
    }
    model = real_model("llama", tie_word_embeddings=True)
    model.save_pretrained(root / "hf-tied")
    out["hf-tied"] = load_base_model(root / "hf-tied")
    return out


@pytest.fixture(scope="module")
def llama_lora():
    return peft_adapter(real_model("llama"), target_modules=ALL_LINEAR)


def _skipped(report):
    return {n: v.reason for n, v in report.modules.items() if v.status == "skipped"}


# ------------------------------------------------------------------------------------------- compatible
@pytest.mark.parametrize("base_key", ["gguf", "hf-tied"])
@pytest.mark.parametrize("engine", ["llama.cpp", "torch"])
def test_peft_lora_is_compatible(llama_lora, bases, base_key, engine):
    report = check_compatibility(llama_lora, bases[base_key], engine=engine)
    assert report.verdict == "compatible", report.as_dict()
    assert report.exit_code == 0 and report.compatible and report.reasons == []
    assert len(report.modules) == 14 and all(v.status == "ok" for v in report.modules.values())
    if engine == "llama.cpp":
        assert report.modules["model.layers.1.self_attn.k_proj"].gguf_name == "blk.1.attn_k.weight"


def test_report_json_is_stable(llama_lora, bases):
    a = check_compatibility(llama_lora, bases["gguf"]).as_dict()
    b = check_compatibility(llama_lora, bases["gguf"]).as_dict()
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert list(a) == ["schema", "verdict", "exit_code", "engine", "reasons", "notes", "counts", "modules"]
    assert a["counts"] == {"ok": 14, "skipped": 0, "mismatch": 0}
    assert list(a["modules"]) == sorted(a["modules"])
    assert a["modules"]["model.layers.0.self_attn.q_proj"] == {
        "status": "ok", "reason": "", "gguf_name": "blk.0.attn_q.weight"}


def test_base_given_as_path(llama_lora, bases):
    assert check_compatibility(llama_lora, bases["gguf"].path).verdict == "compatible"
    with pytest.raises(ValueError, match="unknown engine"):
        check_compatibility(llama_lora, bases["gguf"], engine="vllm")


# ------------------------------------------------------------------------------------------- partial
def test_tied_lm_head_and_saved_modules_are_skipped_for_llama_cpp(bases):
    adapter = peft_adapter(real_model("llama", tie_word_embeddings=True),
                           target_modules=["q_proj", "v_proj", "embed_tokens", "lm_head"])
    report = check_compatibility(adapter, bases["gguf-tied"])
    assert report.verdict == "partial" and report.exit_code == 1 and report.compatible
    assert set(_skipped(report)) == {"lm_head"}
    assert "ties lm_head" in _skipped(report)["lm_head"] and "output" in _skipped(report)["lm_head"]
    assert report.modules["model.embed_tokens"].gguf_name == "token_embd.weight"
    assert any("1 of 6 modules are skipped" in r for r in report.reasons)
    # torch has no such limit: the tied lm_head is the embedding matrix.
    assert check_compatibility(adapter, bases["hf-tied"], engine="torch").verdict == "compatible"

    saved = peft_adapter(real_model("llama"), target_modules=["q_proj"], modules_to_save=["lm_head"])
    assert saved.modules["lm_head"].variant == "full"
    report = check_compatibility(saved, bases["gguf"])
    assert report.verdict == "partial"
    assert "full replacement tensor" in _skipped(report)["lm_head"]
    assert check_compatibility(saved, bases["gguf"], engine="torch").verdict == "compatible"


def test_gemma_lm_head_has_no_llama_cpp_tensor(tmp_path):
    t = llama_gguf_tensors(output=False, head_dim=8)
    base = load_base_model(write_gguf(tmp_path / "gemma.gguf", "gemma", t))
    assert base.arch.id == "gemma"
    adapter = peft_adapter(real_model("gemma"), target_modules=["q_proj", "down_proj", "lm_head"])
    report = check_compatibility(adapter, base)
    assert report.verdict == "partial"
    assert set(_skipped(report)) == {"lm_head"} and "Gemma" in _skipped(report)["lm_head"]


def test_dbrx_experts_skipped_for_llama_cpp(tmp_path):
    t = {"token_embd.weight": (100, 32), "output.weight": (100, 32)}
    for b in range(2):
        t.update({f"blk.{b}.attn_qkv.weight": (64, 32), f"blk.{b}.attn_output.weight": (32, 32),
                  f"blk.{b}.ffn_gate_inp.weight": (4, 32), f"blk.{b}.ffn_gate_exps.weight": (4, 64, 32),
                  f"blk.{b}.ffn_up_exps.weight": (4, 64, 32), f"blk.{b}.ffn_down_exps.weight": (4, 32, 64)})
    base = load_base_model(write_gguf(tmp_path / "dbrx.gguf", "dbrx", t, n_experts=4))
    adapter = make_adapter([("transformer.blocks.0.norm_attn_norm.attn.Wqkv", 64, 32),
                            ("transformer.blocks.0.ffn.experts.mlp.w1", 256, 32)], architecture="dbrx")
    report = check_compatibility(adapter, base)
    assert report.verdict == "partial"
    assert "nn.Parameter" in _skipped(report)["transformer.blocks.0.ffn.experts.mlp.w1"]
    assert report.modules["transformer.blocks.0.norm_attn_norm.attn.Wqkv"].gguf_name == "blk.0.attn_qkv.weight"
    assert check_compatibility(adapter, base, engine="torch").verdict == "compatible"


def test_absent_module_is_skipped(bases):
    adapter = make_adapter([("model.layers.0.self_attn.q_proj", 32, 32), ("model.layers.0.self_attn.rotary", 8, 8)])
    report = check_compatibility(adapter, bases["gguf"])
    assert report.verdict == "partial"
    assert "no llama.cpp tensor" in _skipped(report)["model.layers.0.self_attn.rotary"]
    report = check_compatibility(adapter, bases["hf-tied"], engine="torch")
    assert _skipped(report) == {"model.layers.0.self_attn.rotary": "absent in the base model"}


# ------------------------------------------------------------------------------------------- fused / MoE
def test_separate_qkv_onto_fused_gguf_and_fused_experts_onto_split(tmp_path):
    t = {"token_embd.weight": (100, 32), "output.weight": (100, 32)}
    for b in range(2):
        t.update({f"blk.{b}.attn_qkv.weight": (96, 32), f"blk.{b}.attn_output.weight": (32, 32),
                  f"blk.{b}.ffn_up.weight": (64, 32), f"blk.{b}.ffn_down.weight": (32, 64)})
    phi2 = load_base_model(write_gguf(tmp_path / "phi2.gguf", "phi2", t, n_head_kv=4))
    adapter = peft_adapter(real_model("phi2"), target_modules=["q_proj", "k_proj", "v_proj", "dense", "fc1"])
    report = check_compatibility(adapter, phi2)
    assert report.verdict == "compatible", report.as_dict()
    v = report.modules["model.layers.1.self_attn.k_proj"]
    assert v.gguf_name == "blk.1.attn_qkv.weight" and "packed into" in v.reason

    moe = load_base_model(write_gguf(tmp_path / "moe.gguf", "llama", llama_gguf_tensors(n_experts=4), n_experts=4))
    fused = make_adapter([("model.layers.0.mlp.experts.gate_up_proj", 128, 32),
                          ("model.layers.0.mlp.experts.down_proj", 32, 64)], architecture="mixtral")
    report = check_compatibility(fused, moe)
    assert report.verdict == "compatible", report.as_dict()
    assert "split onto" in report.modules["model.layers.0.mlp.experts.gate_up_proj"].reason


def test_per_expert_adapters(tmp_path):
    moe = load_base_model(write_gguf(tmp_path / "moe.gguf", "llama", llama_gguf_tensors(n_experts=4), n_experts=4))
    legacy = [(f"model.layers.1.block_sparse_moe.experts.{x}.w{w}", *((32, 64) if w == 2 else (64, 32)))
              for x in range(4) for w in (1, 2, 3)]
    report = check_compatibility(make_adapter(legacy + [("model.layers.1.self_attn.q_proj", 32, 32)]), moe)
    assert report.verdict == "compatible", report.as_dict()
    assert report.modules["model.layers.1.block_sparse_moe.experts.2.w3"].gguf_name == "blk.1.ffn_up_exps.weight"
    # Two of four experts: still exact (the others get zero updates), and said so.
    report = check_compatibility(make_adapter(legacy[:6]), moe)
    assert report.verdict == "compatible" and "2 of 4 experts" in report.modules[legacy[0][0]].reason
    # Different ranks inside one stacked tensor cannot be one llama.cpp tensor.
    mixed = [(n, o, i, 4 if n.endswith("0.w1") else 8) for n, o, i in legacy]
    report = check_compatibility(make_adapter(mixed), moe)
    assert report.verdict == "partial"
    assert set(_skipped(report)) == {n for n, *_ in legacy if n.endswith(".w1")}
    assert "different ranks" in _skipped(report)[legacy[0][0]]
    assert check_compatibility(make_adapter(mixed), moe, engine="torch").verdict == "compatible"


# ------------------------------------------------------------------------------------------- incompatible
def test_architecture_mismatch(llama_lora, bases):
    llama_lora_gpt2 = make_adapter([("model.layers.0.self_attn.q_proj", 32, 32)], architecture="gpt2")
    report = check_compatibility(llama_lora_gpt2, bases["gguf"])
    assert report.verdict == "incompatible" and report.exit_code == 3 and not report.compatible
    assert any(r.startswith("model family:") and "GPT-2" in r for r in report.reasons)
    # Mistral and Llama share GGUF arch "llama": an architecture name alone does not refuse them.
    mistral = make_adapter([("model.layers.0.self_attn.q_proj", 32, 32)], architecture="mistral")
    assert check_compatibility(mistral, bases["gguf"]).verdict == "compatible"


def test_hidden_size_mismatch(bases):
    adapter = peft_adapter(real_model("llama", hidden_size=64), target_modules=["q_proj", "v_proj"])
    report = check_compatibility(adapter, bases["gguf"])
    assert report.verdict == "incompatible"
    assert any("hidden size" in r and "64" in r and "32" in r for r in report.reasons), report.reasons
    assert all(v.status == "mismatch" for v in report.modules.values())


def test_layer_count_mismatch(bases):
    adapter = peft_adapter(real_model("llama", num_hidden_layers=4), target_modules=["q_proj"])
    report = check_compatibility(adapter, bases["gguf"])
    assert report.verdict == "incompatible"
    assert any("layer count" in r and "layer 3" in r and "has 2" in r for r in report.reasons), report.reasons
    assert report.modules["model.layers.3.self_attn.q_proj"].status == "mismatch"
    assert report.modules["model.layers.1.self_attn.q_proj"].status == "ok"


def test_vocab_mismatch_for_embedding_adapter(bases):
    adapter = peft_adapter(real_model("llama", vocab_size=120), target_modules=["embed_tokens"])
    assert adapter.modules["model.embed_tokens"].variant == "embedding"
    report = check_compatibility(adapter, bases["gguf"])
    assert report.verdict == "incompatible"
    assert any("vocabulary" in r and "120" in r and "100" in r for r in report.reasons), report.reasons
    assert "vocabulary size" in report.modules["model.embed_tokens"].reason


def test_per_module_shape_mismatch(bases):
    # 4 KV heads instead of 2: k/v have 32 rows, the base 16; q/o fit.
    adapter = peft_adapter(real_model("llama", num_key_value_heads=4), target_modules=["q_proj", "k_proj", "v_proj"])
    report = check_compatibility(adapter, bases["gguf"])
    assert report.verdict == "incompatible"
    bad = {n for n, v in report.modules.items() if v.status == "mismatch"}
    assert bad == {f"model.layers.{b}.self_attn.{p}" for b in (0, 1) for p in ("k_proj", "v_proj")}
    assert report.modules["model.layers.0.self_attn.k_proj"].reason == "shape: adapter 32×32, base 16×32"
    assert any("shape mismatch in 4 module(s)" in r for r in report.reasons)
    assert not any("hidden size" in r for r in report.reasons)


def test_nothing_applies_is_incompatible(bases):
    adapter = make_adapter([("lm_head", 100, 32)])
    report = check_compatibility(adapter, bases["gguf-tied"])
    assert report.verdict == "incompatible"
    assert any("nothing in the adapter applies" in r for r in report.reasons)


def test_upstream_note_does_not_change_the_verdict(llama_lora, bases):
    llama_lora.base_model = "someone/other-model"
    try:
        report = check_compatibility(llama_lora, bases["gguf"])
    finally:
        llama_lora.base_model = None
    assert report.verdict == "compatible"
    assert any("someone/other-model" in n and "acme/tiny-llama" in n for n in report.notes)


def test_position_embedding_lora_is_skipped_for_llama_cpp(tmp_path):
    t = {"token_embd.weight": (100, 32), "position_embd.weight": (64, 32)}
    for b in range(2):
        t.update({f"blk.{b}.attn_qkv.weight": (96, 32), f"blk.{b}.attn_output.weight": (32, 32),
                  f"blk.{b}.ffn_up.weight": (128, 32), f"blk.{b}.ffn_down.weight": (32, 128)})
    base = load_base_model(write_gguf(tmp_path / "gpt2.gguf", "gpt2", t, n_head_kv=4, ff=128))
    assert base.arch.id == "gpt2" and base.tied
    adapter = peft_adapter(real_model("gpt2"), target_modules=["c_attn", "c_fc", "wpe", "wte"])
    assert adapter.modules["transformer.h.0.attn.c_attn"].out_features == 96   # Linear orientation
    report = check_compatibility(adapter, base)
    assert report.verdict == "partial", report.as_dict()
    assert set(_skipped(report)) == {"transformer.wpe"} and "token_embd only" in _skipped(report)["transformer.wpe"]
    assert report.modules["transformer.h.1.mlp.c_fc"].gguf_name == "blk.1.ffn_up.weight"
