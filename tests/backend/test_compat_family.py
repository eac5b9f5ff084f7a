"""One compatibility answer for a pair, whoever asks (check, convert, merge, the engines), and a model
family check for every format: the architecture a file declares, the family of the base model the
adapter says it was trained on, and module names only another family has."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from arch_testlib import llama_gguf_tensors, peft_adapter, real_model, write_gguf

from adapters_backend.cli.main import main as cli
from adapters_backend.core.base_model import load_base_model
from adapters_backend.core.compat import check_compatibility
from adapters_backend.engines.fold import FoldPart, write_folded
from adapters_backend.errors import IncompatibleAdapterError
from adapters_backend.formats.registry import read_adapter

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def write_lora_gguf(path: Path, arch: str, pairs: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float = 0.0):
    import gguf
    w = gguf.GGUFWriter(str(path), arch=arch)
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    for name, (a, b) in pairs.items():
        w.add_tensor(name + ".lora_a", a)
        w.add_tensor(name + ".lora_b", b)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _rand(*shape, seed=0):
    return np.random.default_rng(seed + sum(shape)).standard_normal(shape).astype(np.float32)


def llama_pairs(hidden=32, n_kv=2, hd=8):
    return {f"blk.{b}.attn_q.weight": (_rand(4, hidden), _rand(hidden, 4)) for b in range(2)} | \
           {f"blk.{b}.attn_v.weight": (_rand(4, hidden), _rand(n_kv * hd, 4)) for b in range(2)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("family")
    return {
        "llama": write_gguf(root / "llama.gguf", "llama", llama_gguf_tensors(), base_repos=("acme/tiny-llama",)),
        "qwen2": write_gguf(root / "qwen2.gguf", "qwen2", llama_gguf_tensors()),   # same shapes, other family
        "odd": write_gguf(root / "odd.gguf", "frobnicator", llama_gguf_tensors()),  # a family without a table
        "llama-lora": write_lora_gguf(root / "llama-lora.gguf", "llama", llama_pairs()),
        "root": root,
    }


def test_a_gguf_lora_of_another_family_is_refused_by_check_convert_and_merge(files, capsys):
    report = check_compatibility(files["llama-lora"], files["qwen2"])
    assert report.verdict == "incompatible" and report.exit_code == 3
    assert any("made for Llama ('llama') models, the base is Qwen2 ('qwen2')" in r for r in report.reasons)
    # The reader keeps what the file declares, whatever base it is read against.
    assert read_adapter(files["llama-lora"], base=load_base_model(files["qwen2"])).architecture == "llama"
    assert cli(["check", str(files["llama-lora"]), "--base", str(files["qwen2"])]) == 3
    out = files["root"] / "out.gguf"
    assert cli(["convert", str(files["llama-lora"]), "--base", str(files["qwen2"]), "-o", str(out)]) != 0
    assert not out.exists()
    assert cli(["merge", "--base", str(files["qwen2"]), "--adapter", str(files["llama-lora"]),
                "-o", str(files["root"] / "merged.gguf")]) != 0
    assert "made for Llama ('llama') models" in capsys.readouterr().err
    assert check_compatibility(files["llama-lora"], files["llama"]).verdict == "compatible"


def test_a_gguf_lora_is_checked_by_tensor_names_on_a_family_without_a_table(files, tmp_path):
    with pytest.raises(Exception, match="unsupported architecture 'frobnicator'"):
        load_base_model(files["odd"])                          # convert needs a table …
    odd = load_base_model(files["odd"], need_table=False)       # … llama.cpp does not
    lora = write_lora_gguf(tmp_path / "odd-lora.gguf", "frobnicator", llama_pairs())
    assert check_compatibility(lora, odd).verdict == "compatible"
    stray = write_lora_gguf(tmp_path / "stray.gguf", "frobnicator", {**llama_pairs(),
                                                                     "blk.0.attn_qkv.weight": (_rand(4, 32), _rand(96, 4))})
    report = check_compatibility(stray, odd)
    assert report.verdict == "incompatible"
    assert any("1 of its tensors do not exist in the model (e.g. blk.0.attn_qkv.weight)" in r for r in report.reasons)


@pytest.mark.parametrize("family, module", [("phi3", "self_attn.q_proj"), ("mixtral", "mlp.gate_proj")])
def test_a_llama_peft_adapter_on_another_family_is_incompatible(tmp_path, family, module):
    lora = peft_adapter(real_model("llama"), target_modules=ALL_LINEAR)
    real_model(family).save_pretrained(tmp_path / family)
    base = load_base_model(tmp_path / family)
    for engine in ("llama.cpp", "torch"):
        report = check_compatibility(lora, base, engine)
        assert report.verdict == "incompatible" and report.exit_code == 3, report.reasons
        assert any(r.startswith("model family:") and "Llama models have" in r and module in r for r in report.reasons)


def _cached_config(cache: Path, repo: str, model_type: str) -> None:
    """A config.json in a Hugging Face cache, laid out as huggingface_hub writes it."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({"model_type": model_type, "num_hidden_layers": 2}))


def test_the_declared_base_decides_the_family_when_its_config_is_cached(files, tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    _cached_config(cache, "Qwen/Qwen2-0.5B", "qwen2")
    _cached_config(cache, "meta-llama/Llama-3.2-1B", "llama")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    base = load_base_model(files["llama"])
    lora = peft_adapter(real_model("llama"), target_modules=["q_proj", "v_proj"], base_model="Qwen/Qwen2-0.5B")
    report = check_compatibility(lora, base)
    assert report.verdict == "incompatible"
    assert any("trained on Qwen/Qwen2-0.5B, a Qwen2 model, the base is Llama" in r for r in report.reasons)
    lora.base_model = "meta-llama/Llama-3.2-1B"            # same family, another base: a note only
    report = check_compatibility(lora, base)
    assert report.verdict == "compatible"
    assert any("trained on 'meta-llama/Llama-3.2-1B'; your model is acme/tiny-llama" in n for n in report.notes)
    lora.base_model = "acme/tiny-llama"                     # the base itself: nothing to say
    assert check_compatibility(lora, base).notes == []
    lora.base_model = "someone/unknown-model"               # not cached, base has an upstream id: a note
    assert check_compatibility(lora, base).verdict == "compatible"


def test_the_engine_asks_the_same_check(files):
    pytest.importorskip("llama_cpp")
    from adapters_backend.engines.adapter_files import resolve_adapter_gguf
    with pytest.raises(IncompatibleAdapterError, match="made for Llama \\('llama'\\) models, the base is Qwen2"):
        resolve_adapter_gguf(files["llama-lora"], load_base_model(files["qwen2"], need_table=False))


def test_stacked_expert_pairs_read_per_expert_and_fold_back(tmp_path):
    n_exp, ff, hidden, r = 4, 64, 32, 3
    base_path = write_gguf(tmp_path / "moe.gguf", "llama", llama_gguf_tensors(n_experts=n_exp), n_experts=n_exp)
    a, b = _rand(n_exp, r, hidden), _rand(n_exp, ff, r, seed=1)
    lora = write_lora_gguf(tmp_path / "moe-lora.gguf", "llama", {"blk.1.ffn_gate_exps.weight": (a, b)}, alpha=6.0)
    base = load_base_model(base_path)
    adapter = read_adapter(lora, base=base)
    assert len(adapter.modules) == n_exp
    mod = adapter.modules["model.layers.1.block_sparse_moe.experts.2.w1"]
    assert (mod.out_features, mod.in_features, mod.rank, mod.scale) == (ff, hidden, r, 2.0)
    np.testing.assert_array_equal(adapter.source.read(mod.roles["A"]), a[2])
    np.testing.assert_array_equal(adapter.source.read(mod.roles["B"]), b[2])
    assert check_compatibility(adapter, base).verdict == "compatible"
    out = write_folded(tmp_path / "folded.gguf", [FoldPart(lora, 0.5)])
    folded = read_adapter(out, base=base)
    m = folded.modules["model.layers.1.block_sparse_moe.experts.3.w1"]
    np.testing.assert_allclose(folded.source.read(m.roles["B"]) @ folded.source.read(m.roles["A"]),
                               0.5 * 2.0 * b[3] @ a[3], rtol=1e-5, atol=1e-6)
