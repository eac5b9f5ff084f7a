"""merge into an HF safetensors folder: transformers loads the result and it equals PEFT's own merge;
shards, dtypes and side files are kept; failures leave nothing behind."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from fixtures.tiny_adapters import _load_base, _merge_at
from fixtures.tiny_gguf import TOKENS

from adapters_backend.merge.common import MergeError
from adapters_backend.merge.hf_merge import merge_into_hf


def torch_logits(model):
    import torch
    with torch.no_grad():
        return model(torch.tensor([TOKENS])).logits[0].numpy()


def load(folder):
    import torch
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


@pytest.mark.parametrize("arch,variant,s", [("llama", "lora", 0.5), ("llama", "dora", 1.0), ("gpt2", "dora", -0.5),
                                            ("gpt2", "embed", 1.0), ("phi3", "lokr", 1.0), ("bloom", "adalora", -1.0),
                                            ("gemma", "embed", 0.5)])
def test_hf_merge_equals_peft_merge(arch, variant, s, tiny_models, tiny_adapters, tmp_path):
    adapter = tiny_adapters.make(arch, variant)
    out = tmp_path / "merged"
    result = merge_into_hf(tiny_models.hf(arch), [(adapter, s)], out)
    ours = torch_logits(load(out))
    ref = torch_logits(_merge_at(_load_base(arch), adapter, s))
    assert np.abs(ours - ref).max() < 1e-5
    assert np.abs(ours - torch_logits(_load_base(arch))).max() > 1e-2
    assert result.touched and not result.warnings
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in tiny_models.hf(arch).iterdir())


def test_sharded_bf16_base(tiny_models, tiny_adapters, tmp_path):
    import torch
    from safetensors import safe_open
    base_dir = tmp_path / "sharded"
    model = _load_base("llama").to(torch.bfloat16)
    model.save_pretrained(base_dir, max_shard_size="100KB")
    shutil.copy2(tiny_models.hf("llama") / "tokenizer.model", base_dir)
    shards = sorted(p.name for p in base_dir.glob("model-*.safetensors"))
    assert len(shards) > 1
    adapter = tiny_adapters.make("llama", "patterns")
    out = tmp_path / "merged"
    merge_into_hf(base_dir, [(adapter, 1.0)], out)
    assert sorted(p.name for p in out.glob("model-*.safetensors")) == shards
    assert json.loads((out / "model.safetensors.index.json").read_text()) == \
        json.loads((base_dir / "model.safetensors.index.json").read_text())
    with safe_open(out / shards[0], "pt") as f:
        assert all(f.get_tensor(k).dtype == torch.bfloat16 for k in f.keys())
    ours = torch_logits(load(out))
    ref_model = _merge_at(load(base_dir), adapter, 1.0)       # PEFT merge on the bf16 weights (as f32)
    # both sides add in f32; ours is rounded back to bf16
    assert np.abs(ours - torch_logits(ref_model)).max() < 5e-2


def test_existing_output_and_failures(tiny_models, tiny_adapters, tmp_path):
    from adapters_backend.errors import IncompatibleAdapterError
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(MergeError, match="already exists"):
        merge_into_hf(tiny_models.hf("llama"), [(tiny_adapters.make("llama", "lora"), 1.0)], out)
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(IncompatibleAdapterError):
        merge_into_hf(tiny_models.hf("phi2"), [(tiny_adapters.make("llama", "lora"), 1.0)], tmp_path / "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]      # no staging folders left
    merge_into_hf(tiny_models.hf("llama"), [(tiny_adapters.make("llama", "lora"), 1.0)], out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "model.safetensors").is_file()


def test_cli_merge_hf(tiny_models, tiny_adapters, tmp_path, capsys):
    from adapters_backend.cli.main import main
    out = tmp_path / "merged"
    rc = main(["merge", "--base", str(tiny_models.hf("gpt2")), "--adapter",
               f"{tiny_adapters.make('gpt2', 'lora')}:-1", "-o", str(out)])
    assert rc == 0 and (out / "model.safetensors").is_file()
    assert "copied unchanged" in capsys.readouterr().out


def test_a_merge_past_float16s_range_is_refused_with_no_folder(tiny_models, tiny_adapters, tmp_path):
    """An F16 model merged at a strength that takes weights past 65,504: numpy wrote infinities (with a
    warning) and the merge reported success; now it stops naming the tensor, and leaves no folder."""
    import torch
    base_dir = tmp_path / "f16"
    _load_base("llama").to(torch.float16).save_pretrained(base_dir)
    with pytest.raises(MergeError) as err:
        merge_into_hf(base_dir, [(tiny_adapters.make("llama", "lora"), 1e9)], tmp_path / "out")
    assert "past the 65,504 that F16 holds; lower the strengths (this model stores its weights as F16)" \
        in str(err.value) and str(err.value).startswith("merged tensor 'model.layers.0.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f16"]
