"""Which torch, device and dtype the PyTorch engine runs on: the packages present, CUDA → MPS → CPU unless
asked, and why a device asked for cannot be used, said before anything is loaded."""
from __future__ import annotations

import os

from ..errors import EngineError, EngineUnavailable

INSTALL_HINT = ("the PyTorch engine needs the optional packages torch, transformers and peft: "
                "pip install 'loradeck[torch]' (see the README for CUDA/MPS builds of torch)")


def require_torch():
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise EngineUnavailable(f"{INSTALL_HINT} ({exc})") from None
    return torch


def pick_device(requested: str | None = None) -> str:
    """CUDA → MPS → CPU, unless asked (argument or LORADECK_TORCH_DEVICE); a device asked for that this
    torch cannot use is an EngineError saying why, before anything is loaded."""
    torch = require_torch()
    env = os.environ.get("LORADECK_TORCH_DEVICE", "").strip()
    label = f"device '{requested}'" if requested else f"LORADECK_TORCH_DEVICE={env}"
    requested = requested or env or "auto"
    if requested != "auto":
        return _usable_device(torch, requested, label)
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _usable_device(torch, name: str, label: str) -> str:
    try:
        kind = torch.device(name).type
    except (RuntimeError, ValueError):
        kind = None
    if kind not in ("cpu", "cuda", "mps"):
        raise EngineError(f"{label}: not a device the PyTorch engine can use (auto, cpu, cuda, cuda:N or mps)")
    if kind == "cuda":
        if torch.version.cuda is None:
            raise EngineError(f"{label}: this torch ({torch.__version__}) was built without CUDA; install a CUDA "
                              "build of torch (see docs/troubleshooting.md) or use the cpu device")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise EngineError(f"{label}: torch has CUDA {torch.version.cuda} but finds no GPU (no driver, or no "
                              "device visible: CUDA_VISIBLE_DEVICES); use the cpu device")
        index = torch.device(name).index
        if index is not None and index >= count:
            raise EngineError(f"{label}: there {'is' if count == 1 else 'are'} only {count} CUDA device(s) "
                              f"(cuda:0{f'..cuda:{count - 1}' if count > 1 else ''})")
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise EngineError(f"{label}: MPS is not available here (it needs a Mac with Apple silicon and a torch "
                              "built with MPS); use the cpu device")
    return name


def pick_dtype(device: str, requested: str | None = None):
    torch = require_torch()
    names = {"float32": torch.float32, "f32": torch.float32, "float16": torch.float16, "f16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if requested and requested != "auto":
        if requested not in names:
            raise EngineError(f"unknown dtype {requested!r} (use auto, float32, float16 or bfloat16)")
        return names[requested]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device == "mps" else torch.float32
