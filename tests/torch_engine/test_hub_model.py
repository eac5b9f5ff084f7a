"""A Hub model id on the PyTorch engine: downloaded through huggingface_hub into the HF cache (from the
tests' loopback Hub), giving exactly the local folder's logits; a second load works offline from the cache."""
from __future__ import annotations

import numpy as np
from fixtures.fake_hub import fake_hub  # noqa: F401  (pytest fixture)

TOKENS = [1, 17, 42, 99, 7]


def test_hub_id_loads_through_the_hf_cache(fake_hub, tiny_models, monkeypatch):  # noqa: F811
    from huggingface_hub import constants

    from adapters_backend.engines.torch_engine import TorchEngine

    folder = tiny_models.hf("llama")
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    fake_hub.add("tiny-org/tiny-llama-hf", files, tags=["safetensors", "llama"], library_name="transformers")
    local = TorchEngine(device="cpu", dtype="float32")
    local.load(folder)
    want = local.eval_logits(TOKENS)
    local.close()

    remote = TorchEngine(device="cpu", dtype="float32")
    info = remote.load("tiny-org/tiny-llama-hf")
    assert info["path"] == "tiny-org/tiny-llama-hf" and info["architecture"] == "llama"
    assert np.array_equal(remote.eval_logits(TOKENS), want)
    remote.close()
    assert any(p.name.startswith("models--tiny-org--tiny-llama-hf") for p in
               __import__("pathlib").Path(constants.HF_HUB_CACHE).iterdir())

    fake_hub.stop()                                   # the Hub is gone: the cache still serves the model
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    again = TorchEngine(device="cpu", dtype="float32")
    again.load("tiny-org/tiny-llama-hf")
    assert np.array_equal(again.eval_logits(TOKENS), want)
    again.close()
