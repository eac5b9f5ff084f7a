"""Device and dtype choice: CUDA → MPS → CPU unless asked, with fakes standing in for the GPUs this
machine does not have; GPU paths themselves run only where a GPU is present."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from adapters_backend.engines.torch_engine import pick_device, pick_dtype  # noqa: E402


def _fake(monkeypatch, cuda: bool, mps: bool, bf16: bool = True):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    monkeypatch.delenv("LORADECK_TORCH_DEVICE", raising=False)


@pytest.mark.parametrize("cuda,mps,expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps(monkeypatch, cuda, mps, expected):
    _fake(monkeypatch, cuda, mps)
    assert pick_device() == expected
    assert pick_device("auto") == expected


def test_explicit_choice_and_environment_win(monkeypatch):
    _fake(monkeypatch, True, False)
    assert pick_device("cpu") == "cpu"
    monkeypatch.setenv("LORADECK_TORCH_DEVICE", "cpu")
    assert pick_device() == "cpu"


def test_dtype_by_device(monkeypatch):
    _fake(monkeypatch, True, False, bf16=True)
    assert pick_dtype("cuda") == torch.bfloat16
    _fake(monkeypatch, True, False, bf16=False)
    assert pick_dtype("cuda:1") == torch.float16
    assert pick_dtype("mps") == torch.float16
    assert pick_dtype("cpu") == torch.float32
    assert pick_dtype("cuda", "float32") == torch.float32
    from adapters_backend.errors import EngineError
    with pytest.raises(EngineError, match="unknown dtype"):
        pick_dtype("cpu", "int3")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_cuda(tiny_models, tiny_adapters):
    from adapters_backend.engines.base import ActiveAdapter
    from adapters_backend.engines.torch_engine import TorchEngine
    e = TorchEngine(device="cuda", dtype="float32")
    e.load(tiny_models.hf("llama"))
    e.set_adapters([ActiveAdapter(str(tiny_adapters.make("llama", "lora")), 1.0)])
    assert e.eval_logits([1, 2, 3]).shape[0] == 3
    e.close()
