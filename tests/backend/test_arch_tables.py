"""The architecture tables against transformers (module names), gguf-py (tensor names) and llama.cpp's
converter (row transforms); the name map; the registry, including a third-party table plugin."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from arch_testlib import TRANSFORMERS_FAMILIES, llama_cpp_src, make_adapter, meta_model, write_gguf

from adapters_backend.arch.name_map import TensorNameMap, gguf_tensor_name, hf_module_names
from adapters_backend.arch.registry import all_archs, find_arch, find_archs, resolve_arch_name
from adapters_backend.arch.transforms import TRANSFORMS, RowTransform, apply, get_transform
from adapters_backend.core.base_model import base_info_from_hf
from adapters_backend.plugins.manager import default_registry, reset_default_registry

ALL_IDS = ("llama", "mistral", "mixtral", "gemma", "gemma2", "phi3", "phi2", "qwen2", "qwen", "command-r", "dbrx",
           "gpt2", "bloom")
SPECS = {s.id: s for s in all_archs()}
FIXTURE_PLUGIN = Path(__file__).resolve().parents[1] / "fixtures" / "acme_arch_plugin"


def _expand(t: str, bid: int, xid: int = 0) -> str:
    return t.replace("{bid}", str(bid)).replace("{xid}", str(xid))


def test_every_family_is_registered_and_loads():
    assert set(ALL_IDS) <= set(SPECS)
    assert not [p.name for p in default_registry().broken() if "architectures" in p.name]
    for spec in SPECS.values():
        assert spec.default_targets, spec.id
        for rule in spec.modules:
            assert rule.runtime or rule.reason, f"{spec.id} {rule.hf}: runtime=False needs a reason"
            assert rule.transform in TRANSFORMS, (spec.id, rule.hf, rule.transform)
            assert rule.kind in ("linear", "conv1d", "embedding", "expert", "experts")


# ---------------------------------------------------------------------------- transformers names
@pytest.fixture(scope="module")
def meta_models():
    return {f: meta_model(f) for f in TRANSFORMERS_FAMILIES}


@pytest.mark.parametrize("family", TRANSFORMERS_FAMILIES)
def test_table_names_exist_in_transformers_model(family, meta_models):
    import torch
    from transformers.pytorch_utils import Conv1D
    model = meta_models[family]
    spec = SPECS[family]
    assert type(model).__name__ in spec.hf_architectures
    assert model.config.model_type in spec.hf_model_types
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    n_layers = 2
    for rule in spec.modules:
        if not rule.native:
            continue
        for bid in range(n_layers):
            name = _expand(rule.hf, bid)
            if rule.kind == "experts":
                assert name in params and params[name].dim() >= 2, f"{family}: no parameter {name}"
                continue
            assert name in modules, f"{family}: table names {name}, transformers has no such module"
            mod = modules[name]
            if rule.kind == "embedding":
                assert isinstance(mod, torch.nn.Embedding), name
            elif rule.kind == "conv1d":
                assert isinstance(mod, Conv1D), name
    # Completeness: every Linear / Conv1D / Embedding of the model is in the table.
    nm = TensorNameMap(spec, n_layers)
    for name, mod in modules.items():
        if isinstance(mod, (torch.nn.Linear, Conv1D, torch.nn.Embedding)):
            assert nm.match(name) is not None, f"{family}: module {name} ({type(mod).__name__}) missing from table"
    # Rows: the declared fused blocks add up to the module's real row count (hparams read from the
    # config by base_info_from_hf, shapes from the meta model's parameters).
    shapes = {k: tuple(p.shape) for k, p in params.items()}
    info = base_info_from_hf(model.config.to_dict(), shapes)
    assert info.arch is spec and info.n_layers == 2 and info.hidden == 32 and info.vocab == 100
    checked = 0
    for rule in spec.modules:
        if rule.row_parts and rule.native:
            name = _expand(rule.hf, 0)
            w = params[name] if rule.kind == "experts" else modules[name].weight
            out = w.shape[-2] if rule.kind == "experts" else (w.shape[1] if rule.kind == "conv1d" else w.shape[0])
            assert sum(info.rows(k) for k in rule.row_parts) == out, (family, rule.hf, rule.row_parts, out)
            checked += 1
    assert checked or family not in ("phi3", "gpt2", "bloom", "dbrx", "mixtral")


# ---------------------------------------------------------------------------- gguf-py names
def _gguf_arch(spec):
    import gguf
    for arch, name in gguf.MODEL_ARCH_NAMES.items():
        if name == spec.gguf_arch:
            return arch
    raise AssertionError(f"{spec.id}: gguf-py has no architecture '{spec.gguf_arch}'")


def _converter_name(spec_id: str, hf: str) -> str:
    """The name llama.cpp's converter hands to gguf-py's TensorNameMap for this HF module."""
    if spec_id == "bloom":                       # conversion/bloom.py strips "transformer."
        return hf.removeprefix("transformer.")
    if ".block_sparse_moe.experts." in hf:      # conversion/llama.py stacks experts under this name
        parts = hf.split(".")
        return f"layers.{parts[2]}.feed_forward.experts.{parts[-1]}"
    return hf


@pytest.mark.parametrize("spec_id", ALL_IDS)
def test_gguf_names_agree_with_gguf_py(spec_id):
    import gguf
    spec = SPECS[spec_id]
    arch = _gguf_arch(spec)
    allowed = {gguf.TENSOR_NAMES[t] for t in gguf.MODEL_TENSORS[arch]}
    fused = {f.fused for f in spec.fused}
    for f in spec.fused:
        assert set(f.parts) <= allowed, (spec_id, f)
        assert f.fused in set(gguf.TENSOR_NAMES.values()), (spec_id, f.fused)
    tmap = gguf.get_tensor_name_map(arch, 3)
    for rule in spec.modules:
        if rule.gguf:
            assert rule.gguf in allowed or rule.gguf in fused, f"{spec_id}: {rule.gguf} not a {spec.gguf_arch} tensor"
        for template in (rule.hf, *rule.aliases):
            hf = _converter_name(spec_id, _expand(template, 1, 2))
            theirs = tmap.get_name(hf + ".weight", try_suffixes=(".weight",))
            if not rule.gguf:
                assert theirs is None, f"{spec_id}: gguf-py maps {hf} to {theirs}, table says no tensor"
            elif rule.gguf not in allowed:  # a fused-only name (Mixtral gate_up_exps)
                assert theirs is None, f"{spec_id}: gguf-py now maps {hf}; use its name"  # LoRA Deck's own name
            else:
                assert theirs == gguf_tensor_name(_expand(rule.gguf, 1)), f"{spec_id}: {hf} → {theirs}"


# ---------------------------------------------------------------------------- transforms vs converter
@pytest.fixture(scope="module")
def converter():
    src = llama_cpp_src()
    if src is None:
        pytest.skip("llama.cpp sources not found")
    sys.path[:0] = [str(src), str(src / "gguf-py")]
    try:
        import gguf as conv_gguf  # noqa: F401 - the vendored gguf-py is identical (REFERENCE §0)
        from conversion.base import TextModel
        from conversion.bloom import BloomModel
        from conversion.llama import LlamaModel
    finally:
        del sys.path[:2]

    class _Stop(TextModel):
        model_arch = BloomModel.model_arch

        def modify_tensors(self, data_torch, name, bid):
            yield name, data_torch

    class _BloomProbe(BloomModel, _Stop):   # MRO: BloomModel's modify_tensors, then _Stop's
        model_arch = BloomModel.model_arch

    def bloom(weight, n_head, hidden):
        probe = object.__new__(_BloomProbe)
        probe.hparams = {"n_head": n_head, "hidden_size": hidden}
        ((_, out),) = list(probe.modify_tensors(weight, "transformer.h.0.self_attention.query_key_value.weight", 0))
        return out

    return {"permute": LlamaModel.permute, "bloom": bloom}


@pytest.mark.parametrize("n_head,n_head_kv,head_dim", [(4, 4, 8), (8, 2, 16), (6, 3, 4)])
def test_rope_transforms_match_llama_cpp_permute(converter, n_head, n_head_kv, head_dim):
    import torch
    rng = np.random.default_rng(n_head)
    hidden, r = n_head * head_dim, 3
    hp = {"n_head": n_head, "n_head_kv": n_head_kv}
    for name, rows, heads in (("rope_q", n_head * head_dim, (n_head, n_head)),
                              ("rope_k", n_head_kv * head_dim, (n_head, n_head_kv))):
        B = rng.standard_normal((rows, r)).astype(np.float32)
        A = rng.standard_normal((r, hidden)).astype(np.float32)
        theirs = converter["permute"](torch.from_numpy(B @ A), *heads).numpy()
        ours = apply(name, B, hp) @ A
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
        assert not np.allclose(B, apply(name, B, hp))          # it really permutes
        np.testing.assert_array_equal(apply(name, apply(name, B, hp), hp, inverse=True), B)
        bias = rng.standard_normal(rows).astype(np.float32)     # 1-D (a bias) works the same way
        np.testing.assert_array_equal(apply(name, bias, hp), converter["permute"](torch.from_numpy(bias), *heads).numpy())


@pytest.mark.parametrize("n_head,head_dim", [(4, 8), (2, 16)])
def test_bloom_transform_matches_converter(converter, n_head, head_dim):
    import torch
    hidden, r = n_head * head_dim, 5
    rng = np.random.default_rng(1)
    B = rng.standard_normal((3 * hidden, r)).astype(np.float32)
    A = rng.standard_normal((r, hidden)).astype(np.float32)
    theirs = converter["bloom"](torch.from_numpy(B @ A), n_head, hidden).numpy()
    hp = {"n_head": n_head}
    np.testing.assert_allclose(apply("bloom_qkv", B, hp) @ A, theirs, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(apply("bloom_qkv", apply("bloom_qkv", B, hp), hp, inverse=True), B)


def test_transform_errors_and_plugins(acme_plugin):
    with pytest.raises(ValueError, match="n_head"):
        apply("rope_q", np.zeros((8, 2)), {})
    with pytest.raises(ValueError, match="heads"):
        apply("rope_q", np.zeros((10, 2)), {"n_head": 4})
    with pytest.raises(KeyError, match="unknown row transform"):
        get_transform("swizzle")
    assert get_transform(None).name == "none"
    # A third-party transform by "module:attr": a RowTransform, or a plain function (no inverse).
    t = get_transform("acme_arch.tables:reverse_rows")
    assert isinstance(t, RowTransform) and t.inverse is None
    np.testing.assert_array_equal(apply("acme_arch.tables:reverse_rows", np.arange(4.0), {}), [3, 2, 1, 0])
    with pytest.raises(ValueError, match="no inverse"):
        apply("acme_arch.tables:reverse_rows", np.arange(4.0), {}, inverse=True)
    with pytest.raises(ImportError):
        get_transform("acme_arch.nowhere:fn")
    with pytest.raises(TypeError):
        get_transform("adapters_backend.arch.transforms:TRANSFORMS")


def test_rope_rules_only_on_llama_family():
    for spec_id, spec in SPECS.items():
        transforms = {r.hf.rsplit(".", 1)[-1]: r.transform for r in spec.modules if r.transform != "none"}
        if spec_id in ("llama", "mistral", "mixtral"):
            assert transforms == {"q_proj": "rope_q", "k_proj": "rope_k"}, spec_id
        elif spec_id == "bloom":
            assert transforms == {"query_key_value": "bloom_qkv"}
        else:
            assert transforms == {}, spec_id


# ---------------------------------------------------------------------------- name map
def test_hf_module_names_and_name_map():
    llama = SPECS["llama"]
    names = hf_module_names(llama, 3)
    assert names[:2] == ["model.embed_tokens", "lm_head"]
    assert "model.layers.2.mlp.down_proj" in names and "model.layers.3.mlp.down_proj" not in names
    assert len(names) == len(set(names)) == 2 + 3 * 7
    mixtral = SPECS["mixtral"]
    assert "model.layers.0.block_sparse_moe.experts.7.w3" in hf_module_names(mixtral, 1, n_experts=8)
    assert not any(".experts.0.w1" in n for n in hf_module_names(mixtral, 1))
    assert "h.0.self_attention.query_key_value" in hf_module_names(SPECS["bloom"], 1)  # aliases too

    nm = TensorNameMap(llama, 2)
    gguf, rule = nm.to_gguf("model.layers.1.self_attn.k_proj")
    assert gguf == "blk.1.attn_k" and rule.transform == "rope_k"
    assert nm.to_gguf("model.layers.2.self_attn.k_proj") is None       # block out of range
    assert nm.to_gguf("model.layers.1.self_attn.k_proj.lora_A") is None
    assert nm.to_hf("blk.1.attn_k.weight") == "model.layers.1.self_attn.k_proj"
    assert nm.to_hf("output") == "lm_head" and nm.to_hf("blk.5.attn_k") is None
    mx = TensorNameMap(mixtral, 2, n_experts=4)
    assert mx.to_gguf("model.layers.1.block_sparse_moe.experts.3.w2")[0] == "blk.1.ffn_down_exps"
    assert mx.match("model.layers.1.block_sparse_moe.experts.3.w2").xid == 3
    assert mx.to_gguf("model.layers.1.block_sparse_moe.experts.4.w2") is None
    assert mx.to_gguf("model.layers.0.block_sparse_moe.gate")[0] == "blk.0.ffn_gate_inp"   # alias
    assert mx.to_hf("blk.0.ffn_down_exps") == "model.layers.0.mlp.experts.down_proj"
    assert mx.fused_parts("blk.0.ffn_gate_up_exps") == [("blk.0.ffn_gate_exps", "ff"), ("blk.0.ffn_up_exps", "ff")]
    assert TensorNameMap(SPECS["gemma"], 2).to_gguf("lm_head")[0] == ""
    phi2 = TensorNameMap(SPECS["phi2"], 2)
    assert phi2.fused_containing("blk.1.attn_k")[:2] == ("blk.1.attn_qkv", 1)
    # Maps are per instance: building one never changes the spec or another map.
    before = SPECS["llama"].modules
    TensorNameMap(llama, 100)
    assert SPECS["llama"].modules is before and nm.to_gguf("model.layers.50.mlp.up_proj") is None


def test_find_arch():
    assert find_arch(gguf_arch="llama").id == "llama"
    assert {s.id for s in find_archs(gguf_arch="llama")} == {"llama", "mistral", "mixtral"}
    assert find_arch(model_type="cohere").id == "command-r"
    assert find_arch(hf_class="QWenLMHeadModel").id == "qwen"
    assert find_arch(model_type="mistral", gguf_arch="llama").id == "mistral"
    assert find_arch(model_type="mistral", gguf_arch="gemma") is None
    assert find_arch(gguf_arch="mamba") is None and find_arch() is None
    assert resolve_arch_name("Phi3ForCausalLM").id == "phi3" and resolve_arch_name("LLAMA").id == "llama"


# ---------------------------------------------------------------------------- third-party plugin
@pytest.fixture
def acme_plugin(monkeypatch):
    monkeypatch.syspath_prepend(str(FIXTURE_PLUGIN))
    reset_default_registry()
    yield
    for mod in [m for m in sys.modules if m == "acme_arch" or m.startswith("acme_arch.")]:
        del sys.modules[mod]
    reset_default_registry()


def test_third_party_architecture_by_table_alone(acme_plugin, tmp_path):
    from adapters_backend.core.base_model import load_base_model
    from adapters_backend.core.compat import check_compatibility

    spec = find_arch(gguf_arch="acme")
    assert spec is not None and spec.id == "acme" and find_arch(model_type="acme-lm") is spec
    record = default_registry().architectures["acme"][1]
    assert record.ok and record.distribution == "acme-arch"
    assert "llama" in {s.id for s in all_archs()}               # built-ins still there

    gguf_path = write_gguf(tmp_path / "acme.gguf", "acme", {
        "token_embd.weight": (100, 32), "output.weight": (100, 32),
        **{f"blk.{b}.{t}.weight": s for b in range(2)
           for t, s in (("attn_qkv", (96, 32)), ("attn_output", (32, 32)), ("ffn_up", (64, 32)),
                        ("ffn_down", (32, 64)))}})
    base = load_base_model(gguf_path)
    assert base.arch is spec and base.module_shape("backbone.blocks.1.mix.qkv") == (96, 32)
    adapter = make_adapter([("backbone.blocks.0.mix.qkv", 96, 32), ("backbone.blocks.1.ff.down", 32, 64)],
                           architecture="acme")
    report = check_compatibility(adapter, base)
    assert report.verdict == "compatible", report.as_dict()
    assert report.modules["backbone.blocks.0.mix.qkv"].gguf_name == "blk.0.attn_qkv.weight"


def test_broken_third_party_table_is_skipped_and_recorded(acme_plugin, monkeypatch):
    import acme_arch
    monkeypatch.setattr(acme_arch, "MANIFEST", {**acme_arch.MANIFEST, "architectures": [
        {"id": "acme", "table": "acme_arch.tables:ACME"},
        {"id": "acme-broken", "table": "acme_arch.tables:NOT_A_SPEC"}]})
    reset_default_registry()
    ids = {s.id for s in all_archs()}
    assert "acme" in ids and "acme-broken" not in ids and "llama" in ids
    record = default_registry().architectures["acme-broken"][1]
    assert any("NOT_A_SPEC" in e for e in record.errors)
