"""Evidence: llama.cpp's own convert_lora_to_gguf.py is wrong for rsLoRA (off by √r), and our files
have exactly its tensor names and shapes for a plain LoRA."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from fixtures.tiny_gguf import TOKENS
from gguf import GGUFReader

TOL = 3e-4


def stock_convert(llama_cpp_src, adapter_dir, hf_dir, out):
    proc = subprocess.run([sys.executable, str(llama_cpp_src / "convert_lora_to_gguf.py"), "--base", str(hf_dir),
                           "--outtype", "f32", "--outfile", str(out), str(adapter_dir)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def tensors(path):
    r = GGUFReader(path)
    return {t.name: np.array(t.data) for t in r.tensors}, {k: f.contents() for k, f in r.fields.items()
                                                          if not k.startswith("GGUF.")}


def test_stock_converter_is_off_by_sqrt_r_for_rslora(tiny_models, tiny_adapters, llama_cpp_src, tmp_path):
    """The stock converter writes alpha = lora_alpha, so llama.cpp scales by α/r instead of α/√r:
    its file at strength 1 behaves like the true adapter at strength 1/√r (r = 16 → 4× too weak)."""
    arch, r = "llama", 16
    adapter = tiny_adapters.make(arch, "rslora")
    stock = stock_convert(llama_cpp_src, adapter, tiny_models.hf(arch), tmp_path / "stock.gguf")
    _t, kv = tensors(stock)
    assert kv["adapter.lora.alpha"] == pytest.approx(8.0)        # lora_alpha as is, no √r
    refs = tiny_adapters.references([("s1", arch, [(arch, "rslora", 1.0)]),
                                     ("s_sqrt", arch, [(arch, "rslora", 1 / np.sqrt(r))])])
    base = tiny_models.gguf(arch)
    theirs = tiny_models.logits(base, [(stock, 1.0)])
    wrong = np.abs(theirs - tiny_models.logits(refs["s1"])).max()
    assert wrong > 0.1, f"the stock converter was expected to be visibly wrong, max|Δ| = {wrong}"
    assert np.abs(theirs - tiny_models.logits(refs["s_sqrt"])).max() < TOL


def test_names_and_shapes_match_the_stock_converter_for_plain_lora(tiny_models, tiny_adapters, llama_cpp_src,
                                                                   tmp_path):
    """Plain LoRA on Llama (q/k permuted) and Phi-3 (fused qkv/gate_up): same tensor names and shapes as
    llama.cpp's converter, same lora_a, and lora_b equal to theirs times alpha/r (we fold the scale)."""
    from adapters_backend.convert.to_gguf import convert_to_gguf

    for arch in ("llama", "phi3"):
        adapter = tiny_adapters.make(arch, "lora")      # r = 8, lora_alpha = 16
        stock = stock_convert(llama_cpp_src, adapter, tiny_models.hf(arch), tmp_path / f"stock-{arch}.gguf")
        ours = convert_to_gguf(adapter, tiny_models.gguf(arch), tmp_path / f"ours-{arch}.gguf").path
        t_stock, kv_stock = tensors(stock)
        t_ours, kv_ours = tensors(ours)
        assert sorted(t_ours) == sorted(t_stock)
        for name in t_stock:
            assert t_ours[name].shape == t_stock[name].shape, name
            factor = 16 / 8 if name.endswith(".lora_b") else 1.0
            np.testing.assert_allclose(t_ours[name], t_stock[name] * factor, rtol=1e-6, atol=1e-7, err_msg=name)
        assert kv_ours["general.type"] == kv_stock["general.type"] == "adapter"
        assert kv_ours["adapter.type"] == kv_stock["adapter.type"] == "lora"
        assert kv_ours["general.architecture"] == kv_stock["general.architecture"]
        assert kv_ours["adapter.lora.alpha"] == pytest.approx(8.0)   # = rank: llama.cpp's alpha/rank is 1
        # and both give the same logits in llama.cpp
        base = tiny_models.gguf(arch)
        assert np.abs(tiny_models.logits(base, [(ours, 1.0)]) - tiny_models.logits(base, [(stock, 1.0)])).max() < TOL
    assert len(TOKENS) > 1
