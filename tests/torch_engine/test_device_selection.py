"""Device and dtype choice: CUDA → MPS → CPU unless asked, with fakes standing in for the GPUs this
machine does not have; GPU paths themselves run only where a GPU is present."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from adapters_backend.engines.torch_device import pick_device, pick_dtype  # noqa: E402


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


def _no_gpu_build(monkeypatch, cuda_version=None, gpus=0):
    """A torch built without CUDA (cuda_version None), or with CUDA but `gpus` devices."""
    _fake(monkeypatch, gpus > 0, False)
    monkeypatch.setattr(torch.version, "cuda", cuda_version)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)


def test_cuda_on_a_cpu_only_torch_says_so(monkeypatch):
    from adapters_backend.errors import EngineError
    _no_gpu_build(monkeypatch)
    with pytest.raises(EngineError, match=r"device 'cuda': this torch \(.*\) was built without CUDA; install a "
                                          r"CUDA build of torch"):
        pick_device("cuda")
    monkeypatch.setenv("LORADECK_TORCH_DEVICE", "cuda")
    with pytest.raises(EngineError, match="LORADECK_TORCH_DEVICE=cuda: this torch"):
        pick_device()
    assert pick_device("cpu") == "cpu"          # an explicit choice wins over the environment


def test_other_unusable_devices(monkeypatch):
    from adapters_backend.errors import EngineError
    _no_gpu_build(monkeypatch, cuda_version="12.8")
    with pytest.raises(EngineError, match="has CUDA 12.8 but finds no GPU"):
        pick_device("cuda")
    _no_gpu_build(monkeypatch, cuda_version="12.8", gpus=2)
    assert pick_device("cuda:1") == "cuda:1"
    with pytest.raises(EngineError, match=r"only 2 CUDA device\(s\) \(cuda:0..cuda:1\)"):
        pick_device("cuda:2")
    with pytest.raises(EngineError, match="MPS is not available here"):
        pick_device("mps")
    for bad in ("banana", "tpu", "cuda:x"):
        with pytest.raises(EngineError, match="not a device the PyTorch engine can use"):
            pick_device(bad)


def test_chat_with_an_unusable_device_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    from adapters_backend.cli.main import main
    _no_gpu_build(monkeypatch)
    folder = tmp_path / "hf-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert main(["chat", "--model", str(folder), "--device", "cuda", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("loradeck: error: device 'cuda': this torch") and err.count("\n") == 1
