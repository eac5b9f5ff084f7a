"""Hub tests: the fake Hub (tests/fixtures/fake_hub.py) filled with small real adapters."""
from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.fake_hub import fake_hub  # noqa: F401  (pytest fixture)
from fixtures.small_adapters import write_base, write_peft

BASE_ID = "tiny-org/tiny-llama"


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def peft_repo(tmp: Path, name: str, **kw) -> dict[str, bytes]:
    files = folder_files(write_peft(tmp / name.replace("/", "--"), **kw))
    files["README.md"] = b"---\nlibrary_name: peft\nlicense: apache-2.0\n---\n# adapter\n"
    return files


@pytest.fixture
def hub(fake_hub, tmp_path):
    src = tmp_path / "repos"
    adapter_tags = ["peft", "lora", "safetensors", f"base_model:adapter:{BASE_ID}", "license:apache-2.0"]
    card = {"base_model": BASE_ID, "license": "apache-2.0", "library_name": "peft"}
    fake_hub.add("alice/tiny-style-lora", peft_repo(src, "style", seed=1), tags=adapter_tags, card=card,
                 library_name="peft", downloads=500, likes=5, modified="2025-03-01T00:00:00.000Z")
    fake_hub.add("bob/wide-lora", peft_repo(src, "wide", hidden=128, seed=2),
                 tags=["peft", "lora", f"base_model:adapter:{BASE_ID}"], card={"base_model": BASE_ID},
                 library_name="peft", downloads=100, likes=50, modified="2025-06-01T00:00:00.000Z")
    fake_hub.add("carol/kohya-poems", {"poems.safetensors": b"\0" * 64}, tags=["lora", "lycoris"],
                 downloads=80, likes=1, modified="2024-01-01T00:00:00.000Z")
    fake_hub.add("dave/tiny-llama-GGUF", {"tiny-llama-Q4_K_M.gguf": b"GGUF" + b"\0" * 400,
                                         "tiny-llama-Q8_0.gguf": b"GGUF" + b"\0" * 800,
                                         "README.md": b"# gguf"},
                 tags=["gguf", f"base_model:quantized:{BASE_ID}"], card={"base_model": BASE_ID}, downloads=900)
    # A repository with a model split in two parts, a split missing a part, and a vision projector.
    fake_hub.add("gina/big-llama-GGUF", {"big-llama-Q4_K_M.gguf": b"GGUF" + b"\0" * 300,
                                        "big-llama-Q8_0-00001-of-00002.gguf": b"GGUF" + b"\1" * 400,
                                        "big-llama-Q8_0-00002-of-00002.gguf": b"GGUF" + b"\2" * 200,
                                        "big-llama-Q2_K-00001-of-00003.gguf": b"GGUF" + b"\0" * 50,
                                        "big-llama-Q2_K-00003-of-00003.gguf": b"GGUF" + b"\0" * 50,
                                        "mmproj-big-llama-f16.gguf": b"GGUF" + b"\0" * 90},
                 tags=["gguf"], downloads=2)
    fake_hub.add("erin/gated-lora", peft_repo(src, "gated", seed=3), tags=adapter_tags, library_name="peft",
                 gated=True, downloads=3)
    fake_hub.add("alice/big-lora", peft_repo(src, "big", seed=4, hidden=256, layers=8, r=64),
                 tags=["peft", "lora"], library_name="peft", downloads=1)
    fake_hub.add("frank/pickle-only", {"adapter_config.json": b"{}", "adapter_model.bin": b"x"},
                 tags=["peft", "lora"], library_name="peft")
    for i in range(7):
        fake_hub.add(f"filler/peft-{i}", peft_repo(src, f"f{i}", seed=10 + i), tags=["peft", "lora"],
                     library_name="peft", downloads=10 + i)
    base = write_base(src / "base")
    fake_hub.add(BASE_ID, folder_files(base), tags=["safetensors", "llama"], library_name="transformers")
    fake_hub.base_dir = base
    return fake_hub
