"""Models downloaded into the Hugging Face cache are listed with what they take on disk, and one can be
removed: exactly that repository's files, never while the loaded model or a library adapter is in it."""
from __future__ import annotations

import numpy as np
import pytest
from hub.conftest import BASE_ID

from adapters_backend import hub as backend_hub
from adapters_backend.errors import HubError
from adapters_backend.hub.client import cache_dir


def adapter_gguf(path):
    """A llama.cpp LoRA adapter GGUF (general.type = adapter): an adapter, not a model."""
    import gguf
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", 8.0)
    w.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((4, 64), np.float32))
    w.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((64, 4), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def repo_folder(repo_id: str):
    return cache_dir() / f"models--{repo_id.replace('/', '--')}"


def test_downloaded_models_are_listed_and_one_is_removed(hub_with_models):
    fake, q4, split, library_entry = hub_with_models
    models = {m.repo_id: m for m in backend_hub.downloaded_models()}
    # GGUF models (a split one as its first part, its vision projector left out) and a PyTorch model;
    # not the adapters: the PEFT one in the library, nor a GGUF adapter
    assert set(models) == {"dave/tiny-llama-GGUF", "gina/big-llama-GGUF", BASE_ID}
    assert models["dave/tiny-llama-GGUF"].kind == "GGUF" and models["dave/tiny-llama-GGUF"].models == [str(q4)]
    assert models["gina/big-llama-GGUF"].models == [str(split)]
    assert models[BASE_ID].kind == "PyTorch"
    blobs = sum(p.stat().st_size for p in (repo_folder("gina/big-llama-GGUF") / "blobs").iterdir())
    assert models["gina/big-llama-GGUF"].size == blobs

    # The loaded model's repository is refused, and nothing of it goes
    with pytest.raises(HubError, match="dave/tiny-llama-GGUF: it is in use"):
        backend_hub.remove_downloaded("dave/tiny-llama-GGUF", [str(q4), str(library_entry.path)])
    assert q4.is_file()
    # … as is an adapter the library references in the cache
    with pytest.raises(HubError, match="is in use"):
        backend_hub.remove_downloaded("alice/tiny-style-lora", [str(library_entry.path)])
    assert library_entry.path.exists()

    freed = backend_hub.remove_downloaded("gina/big-llama-GGUF", [str(q4), str(library_entry.path)])
    assert freed == blobs and not repo_folder("gina/big-llama-GGUF").exists()
    assert {m.repo_id for m in backend_hub.downloaded_models()} == {"dave/tiny-llama-GGUF", BASE_ID}
    assert q4.is_file() and library_entry.path.exists()
    with pytest.raises(HubError, match="gina/big-llama-GGUF: it is not in the Hugging Face cache"):
        backend_hub.remove_downloaded("gina/big-llama-GGUF", [])


def test_an_empty_or_missing_cache_lists_nothing(fake_hub):
    assert backend_hub.downloaded_models() == []


@pytest.fixture
def hub_with_models(hub, tmp_path):
    """The loopback Hub with two GGUF models, a GGUF adapter, a PyTorch model and a PEFT adapter
    downloaded, the adapter installed into the library."""
    hub.add("ivan/tiny-lora-GGUF", {"tiny-lora-f32.gguf": adapter_gguf(tmp_path / "a.gguf")}, tags=["gguf", "lora"])
    q4 = hub_download("dave/tiny-llama-GGUF", ["tiny-llama-Q4_K_M.gguf"])
    split = hub_download("gina/big-llama-GGUF", ["big-llama-Q8_0-00001-of-00002.gguf",
                                                 "big-llama-Q8_0-00002-of-00002.gguf", "mmproj-big-llama-f16.gguf"])
    hub_download("ivan/tiny-lora-GGUF", ["tiny-lora-f32.gguf"])
    hub_download(BASE_ID, [f.name for f in hub.base_dir.iterdir() if f.is_file()])
    entry = hub_install("alice/tiny-style-lora")
    return hub, q4, split, entry


def hub_download(repo_id, files):
    return backend_hub.download_files(repo_id, files) / files[0]


def hub_install(repo_id):
    return backend_hub.install_from_hub(repo_id)
