"""convert beyond the parity matrix: DoRA's SVD error, output types, fused/split tensors, the alpha
rule, errors (incompatible, cancelled: no file), the cache and the command line."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from gguf import GGUFReader

from adapters_backend.convert.to_gguf import convert_to_gguf
from adapters_backend.errors import IncompatibleAdapterError, JobCancelled
from adapters_backend.jobs import JobContext

TOL = 3e-4


def kv(path):
    return {k: f.contents() for k, f in GGUFReader(path).fields.items() if not k.startswith("GGUF.")}


def types(path):
    return {t.name: t.tensor_type.name for t in GGUFReader(path).tensors}


def max_diff(a, b) -> float:
    return float(np.abs(a - b).max())


def test_dora_is_truncated_to_the_error_limit(tiny_models, tiny_adapters, tmp_path):
    arch = "llama"
    result = convert_to_gguf(tiny_adapters.make(arch, "dora"), tiny_models.gguf(arch), tmp_path / "d.gguf")
    assert len(result.dora) == 14
    assert all(err <= 1e-3 for _, err in result.dora.values())
    assert all(1 <= rank <= 64 for rank, _ in result.dora.values())
    assert any("loradeck merge" in n for n in result.notes)
    ref = tiny_adapters.references([("r", arch, [(arch, "dora", 1.0)])])["r"]
    err = max_diff(tiny_models.logits(tiny_models.gguf(arch), [(result.path, 1.0)]), tiny_models.logits(ref))
    assert err < 2e-2          # approximate by design: 1e-3 relative error per module
    loose = convert_to_gguf(tiny_adapters.make(arch, "dora"), tiny_models.gguf(arch), tmp_path / "d2.gguf",
                            max_error=0.3)
    assert all(loose.dora[name][0] < rank for name, (rank, _) in result.dora.items())
    assert 0.0 < loose.max_dora_error <= 0.3


@pytest.mark.parametrize("outtype,expect,tol", [("f16", "F16", 2e-3), ("bf16", "BF16", 2e-2), ("q8_0", "Q8_0", 2e-2)])
def test_outtypes_load_in_llama_cpp(outtype, expect, tol, tiny_models, tiny_adapters, tmp_path):
    arch = "llama"
    adapter = tiny_adapters.make(arch, "rslora")            # r = 16: lora_b rows are 16 values
    result = convert_to_gguf(adapter, tiny_models.gguf(arch), tmp_path / "o.gguf", outtype=outtype)
    t = types(result.path)
    a_types = {v for k, v in t.items() if k.endswith("lora_a")}
    b_types = {v for k, v in t.items() if k.endswith("lora_b")}
    assert a_types == {expect}
    # Q8_0 needs rows of whole 32-value blocks; lora_b (out, 16) falls back to F16 like llama.cpp's converter
    assert b_types == ({"F16"} if outtype == "q8_0" else {expect})
    if outtype == "q8_0":
        assert any("multiple of 32" in n for n in result.notes)
    ref = tiny_adapters.references([("r", arch, [(arch, "rslora", 1.0)])])["r"]
    assert max_diff(tiny_models.logits(tiny_models.gguf(arch), [(result.path, 1.0)]), tiny_models.logits(ref)) < tol


def test_default_outtype_is_the_adapters_precision(tiny_models, tiny_adapters, tmp_path):
    from safetensors.torch import load_file, save_file

    src = tiny_adapters.make("qwen2", "lora")
    bf16 = tmp_path / "bf16-adapter"
    shutil.copytree(src, bf16)
    tensors = load_file(bf16 / "adapter_model.safetensors")
    save_file({k: v.bfloat16() for k, v in tensors.items()}, bf16 / "adapter_model.safetensors")
    result = convert_to_gguf(bf16, tiny_models.gguf("qwen2"), tmp_path / "x.gguf")
    assert result.outtype == "bf16" and set(types(result.path).values()) == {"BF16"}
    assert convert_to_gguf(src, tiny_models.gguf("qwen2"), tmp_path / "y.gguf").outtype == "f32"


def test_alpha_rule(tiny_models, tiny_adapters, tmp_path):
    """One rank everywhere → alpha = rank (alpha/rank = 1); mixed ranks → alpha 0 (= no scaling)."""
    uniform = convert_to_gguf(tiny_adapters.make("llama", "lora"), tiny_models.gguf("llama"), tmp_path / "u.gguf")
    mixed = convert_to_gguf(tiny_adapters.make("llama", "patterns"), tiny_models.gguf("llama"), tmp_path / "m.gguf")
    assert kv(uniform.path)["adapter.lora.alpha"] == 8.0 and set(uniform.ranks.values()) == {8}
    assert kv(mixed.path)["adapter.lora.alpha"] == 0.0 and len(set(mixed.ranks.values())) > 1


def test_hf_folder_base_gives_the_same_file(tiny_models, tiny_adapters, tmp_path):
    adapter = tiny_adapters.make("llama", "loha")
    a = convert_to_gguf(adapter, tiny_models.gguf("llama"), tmp_path / "a.gguf")
    b = convert_to_gguf(adapter, tiny_models.hf("llama"), tmp_path / "b.gguf")
    ta = {t.name: np.array(t.data) for t in GGUFReader(a.path).tensors}
    tb = {t.name: np.array(t.data) for t in GGUFReader(b.path).tensors}
    assert list(ta) == list(tb) or sorted(ta) == sorted(tb)
    for name in ta:
        np.testing.assert_array_equal(ta[name], tb[name])


def test_separate_qkv_onto_a_fused_base(tiny_models, tiny_adapters, tmp_path):
    """phi2 converted with --fuse-qkv has one attn_qkv tensor; separate q/k/v LoRAs are packed into it
    (A's stacked, B's block-diagonal) — exact."""
    arch = "phi2"
    fused = tiny_models.gguf(arch, fuse_qkv=True)
    assert "blk.0.attn_qkv.weight" in types(fused) and "blk.0.attn_q.weight" not in types(fused)
    result = convert_to_gguf(tiny_adapters.make(arch, "lora"), fused, tmp_path / "f.gguf")
    assert result.ranks["blk.0.attn_qkv.weight"] == 3 * 8
    assert "blk.0.attn_q.weight" not in result.ranks
    ref = tiny_adapters.references([("r", arch, [(arch, "lora", -1.0)])])["r"]
    assert max_diff(tiny_models.logits(fused, [(result.path, -1.0)]), tiny_models.logits(ref)) < TOL


def test_fused_module_onto_a_split_base(tiny_models, tiny_adapters, tmp_path):
    """A LoRA on the fused remote-code phi2 `mixer.Wqkv` lands on the split attn_q/k/v of a
    transformers-converted base (rows split, A shared) and equals the separate q/k/v LoRA."""
    from adapters_backend.core.adapter import Adapter, ModuleDelta
    from adapters_backend.core.variants import lowrank
    from adapters_backend.formats.registry import read_adapter
    from adapters_backend.formats.safetensors_io import DictSource

    arch = "phi2"
    src = read_adapter(tiny_adapters.make(arch, "lora"))
    tensors, modules = {}, {}
    for bid in range(2):
        parts = [src.modules[f"model.layers.{bid}.self_attn.{p}_proj"] for p in "qkv"]
        ab = [lowrank(m, src.tensors(m)) for m in parts]
        A = np.concatenate([a for a, _ in ab], axis=0)
        B = np.zeros((sum(b.shape[0] for _, b in ab), A.shape[0]), np.float32)
        r0 = c0 = 0
        for a, b in ab:
            B[r0:r0 + b.shape[0], c0:c0 + a.shape[0]] = b
            r0, c0 = r0 + b.shape[0], c0 + a.shape[0]
        name = f"transformer.h.{bid}.mixer.Wqkv"
        tensors[f"{name}.A"], tensors[f"{name}.B"] = A, B
        modules[name] = ModuleDelta(name, "lora", B.shape[0], A.shape[1], A.shape[0], None, 1.0,
                                    {"A": f"{name}.A", "B": f"{name}.B"})
    fused_adapter = Adapter(tmp_path / "wqkv", "test", modules, DictSource(tensors))
    base = tiny_models.gguf(arch)
    split = convert_to_gguf(fused_adapter, base, tmp_path / "split.gguf")
    assert {"blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight"} <= set(split.ranks)
    separate = convert_to_gguf(src, base, tmp_path / "sep.gguf")
    sep_qkv = tmp_path / "sep-qkv.gguf"     # the separate adapter's q/k/v tensors only
    _keep_only(separate.path, sep_qkv, ("attn_q.", "attn_k.", "attn_v."))
    expected = tiny_models.logits(base, [(sep_qkv, 1.0)])
    assert max_diff(tiny_models.logits(base, [(split.path, 1.0)]), expected) < TOL
    assert max_diff(expected, tiny_models.logits(base)) > 100 * TOL


def _keep_only(src, dst, markers):
    from adapters_backend.gguf.tensors import decode
    from adapters_backend.gguf.writer import StreamedGGUFWriter
    r = GGUFReader(src)
    kept = [t for t in r.tensors if any(m in t.name for m in markers)]

    def kv(w):
        w.add_type("adapter")
        w.add_string("adapter.type", "lora")

    with StreamedGGUFWriter(dst, r.fields["general.architecture"].contents(), [t.name for t in kept], kv) as w:
        for t in kept:
            w.add_tensor(t.name, decode(t.data, t.tensor_type, tuple(reversed(t.shape.tolist()))), t.tensor_type)
        w.commit()


def test_incompatible_adapter_gives_the_check_error_and_no_file(tiny_models, tiny_adapters, tmp_path):
    out = tmp_path / "x.gguf"
    with pytest.raises(IncompatibleAdapterError) as info:
        convert_to_gguf(tiny_adapters.make("llama", "lora"), tiny_models.gguf("phi2"), out)
    assert info.value.report is not None and info.value.report.verdict == "incompatible"
    assert "shape" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_cancelled_conversion_leaves_no_file(tiny_models, tiny_adapters, tmp_path):
    ctx = JobContext(lambda done, total, msg: ctx.cancel() if done >= 3 else None)
    out = tmp_path / "x.gguf"
    with pytest.raises(JobCancelled):
        convert_to_gguf(tiny_adapters.make("llama", "lora"), tiny_models.gguf("llama"), out, ctx=ctx)
    assert list(tmp_path.iterdir()) == []


def test_cache_reuses_converted_files(tiny_models, tiny_adapters, tmp_path, monkeypatch):
    from adapters_backend.convert.cache import convert_cached

    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    adapter = tiny_adapters.make("qwen2", "patterns")
    first = convert_cached(adapter, tiny_models.gguf("qwen2"))
    assert not first.cached and first.path.parent == tmp_path / "cache" / "converted"
    stamp = first.path.stat().st_ino          # a conversion writes a new file (atomic replace); a hit only marks it used
    again = convert_cached(adapter, tiny_models.gguf("qwen2"))
    assert again.cached and again.path == first.path and again.path.stat().st_ino == stamp
    assert again.ranks == first.ranks
    # the same model as an HF folder has the same tensors: same entry; another outtype: another entry
    assert convert_cached(adapter, tiny_models.hf("qwen2")).path == first.path
    assert convert_cached(adapter, tiny_models.gguf("qwen2"), outtype="f16").path != first.path


def test_cli_convert(tiny_models, tiny_adapters, tmp_path, capsys):
    from adapters_backend.cli.main import main

    out = tmp_path / "cli.gguf"
    rc = main(["convert", str(tiny_adapters.make("gpt2", "lora")), "--base", str(tiny_models.gguf("gpt2")),
               "-o", str(out), "--outtype", "f16"])
    assert rc == 0 and out.is_file()
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "f16" in printed
    bad = tmp_path / "bad.gguf"
    rc = main(["convert", str(tiny_adapters.make("gpt2", "lora")), "--base", str(tiny_models.gguf("llama")),
               "-o", str(bad)])
    assert rc == 3 and not bad.exists()
    assert "incompatible" in capsys.readouterr().err


def test_factors_past_float16s_range_are_stored_as_f32(tiny_models, tiny_adapters, tmp_path):
    """An f16 adapter whose alpha, folded into B, takes values past 65,504: those tensors are written as
    F32 with a note (they were written as infinities, and llama.cpp answered with nonsense); the others
    stay F16, and the file gives the same logits as the adapter's f32 conversion."""
    import json

    from safetensors.torch import load_file, save_file

    from adapters_backend.gguf.tensors import first_nonfinite
    loud = tmp_path / "loud"
    shutil.copytree(tiny_adapters.make("llama", "lora"), loud)
    cfg = json.loads((loud / "adapter_config.json").read_text())
    cfg["alpha_pattern"] = {"q_proj": cfg["r"] * 1e6}      # q_proj's scale 1e6: B·scale passes 65,504
    (loud / "adapter_config.json").write_text(json.dumps(cfg))
    tensors = load_file(loud / "adapter_model.safetensors")
    save_file({k: v.half() for k, v in tensors.items()}, loud / "adapter_model.safetensors")
    base = tiny_models.gguf("llama")
    result = convert_to_gguf(loud, base, tmp_path / "loud.gguf")
    assert result.outtype == "f16"
    t = types(result.path)
    assert {k for k, v in t.items() if v == "F32"} == {k for k in t if "attn_q" in k and k.endswith("lora_b")}
    assert any("past what F16 holds are stored as f32" in n for n in result.notes)
    assert first_nonfinite(result.path) is None
    wide = convert_to_gguf(loud, base, tmp_path / "loud32.gguf", outtype="f32")
    got = tiny_models.logits(base, [(result.path, 1.0)])
    assert np.isfinite(got).all()
    assert max_diff(got, tiny_models.logits(base, [(wide.path, 1.0)])) <= 1e-3 * np.abs(got).max()
