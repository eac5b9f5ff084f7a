"""Every input format converts to the same runtime behaviour: the PEFT adapters of the parity matrix,
re-packaged as Ludwig folders, Kohya/LyCORIS single files and .zip archives, give llama.cpp the
reference logits (the PEFT merge) — max |Δlogit| ≤ 3e-4 at strengths 1 and −0.5."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from adapters_backend.convert.to_gguf import convert_to_gguf

TOL = 3e-4
LUDWIG = [("llama", "lora"), ("llama", "rslora"), ("qwen2", "adalora"), ("phi3", "loha"), ("llama", "dora")]
KOHYA = [("llama", "lora"), ("llama", "patterns"), ("llama", "loha"), ("llama", "lokr"), ("qwen2", "rslora"),
         ("phi3", "lora"), ("bloom", "lora")]


def check(tiny_models, tiny_adapters, arch, variant, adapter_path, tmp_path, expect_format=None):
    base = tiny_models.gguf(arch)
    result = convert_to_gguf(adapter_path, base, tmp_path / "out.gguf",
                             **({"max_error": 1e-6} if variant == "dora" else {}))
    refs = tiny_adapters.references([(s, arch, [(arch, variant, s)]) for s in (1.0, -0.5)])
    for s in (1.0, -0.5):
        got = tiny_models.logits(base, [(result.path, s)])
        assert float(np.abs(got - tiny_models.logits(refs[s])).max()) <= TOL, f"strength {s}"
    if expect_format:
        from gguf import GGUFReader
        fields = GGUFReader(result.path).fields
        assert fields["loradeck.source_format"].contents() == expect_format
    return result


@pytest.mark.parametrize("arch,variant", LUDWIG, ids=[f"{a}-{v}" for a, v in LUDWIG])
def test_ludwig(arch, variant, tiny_models, tiny_adapters, tmp_path):
    check(tiny_models, tiny_adapters, arch, variant, tiny_adapters.ludwig(arch, variant), tmp_path, "ludwig")


@pytest.mark.parametrize("arch,variant", KOHYA, ids=[f"{a}-{v}" for a, v in KOHYA])
def test_kohya(arch, variant, tiny_models, tiny_adapters, tmp_path):
    check(tiny_models, tiny_adapters, arch, variant, tiny_adapters.kohya(arch, variant), tmp_path, "kohya")


def test_zip_of_a_peft_folder(tiny_models, tiny_adapters, tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    src = tiny_adapters.make("gemma", "patterns")
    archive = tmp_path / "adapter.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in src.iterdir():
            z.write(f, f"my-adapter/{f.name}")
    check(tiny_models, tiny_adapters, "gemma", "patterns", archive, tmp_path, "peft")
