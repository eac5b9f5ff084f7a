"""Fit a GGUF model to the machine before llama.cpp loads it: how many layers go on the GPU, and how
long the context may be.

- GPU layers: automatic (negative, the default) puts every layer on the GPU when llama.cpp has one,
  and when the model does not fit the GPU's memory tries three quarters, half, a quarter of the layers,
  then none (llama.cpp's own fitting lives in its `common` library, which llama-cpp-python does not
  expose). A count the user set is tried alone. Without a GPU, none.
- Context: never longer than the model was trained for (its `<arch>.context_length`), as the PyTorch
  engine does with `max_position_embeddings`: past it, positions the model never saw make its answers
  degrade without any error, while a shorter context only moves the long-chat window sooner.
- Memory: a model (and its KV cache) larger than the computer's memory still loads, llama.cpp maps
  the file, but then every token pages it in from disk: `memory_note` says so instead of leaving the
  user with answers that crawl.
"""
from __future__ import annotations

import gc
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..jobs import JobContext
from ..kinds import is_count
from ..machine import fits_memory, total_memory
from .llama_kv import kv_bytes_per_token
from .llama_runtime import FEWER_LAYERS, OutOfMemoryLoadError, open_model, release_free_memory

log = logging.getLogger(__name__)

AUTO_GPU_LAYERS = -1                   # n_gpu_layers: every layer that fits the GPU, none without one


@dataclass
class Fit:
    gpu_layers: int                    # what llama.cpp was given: -1 all, 0 none, else that many
    device: str                        # device_text(): "CPU", "GPU", "GPU, 16 of 32 layers"
    n_ctx: int                         # the context asked of llama.cpp
    trained: int | None = None         # the context the model was trained for, where its file says
    notes: list[str] = field(default_factory=list)   # what the user should know (a cut context, layers left out)
    host_bytes: int = 0                # weights and KV cache in the computer's memory (host_bytes())


def gpu_layer_tries(requested: int, n_layers: int, gpu: bool) -> list[int]:
    """The GPU layer counts to load with, in order, until one fits: a count the user set alone; for
    automatic (negative), every layer (and the output layer: llama.cpp's -1), then three quarters,
    half, a quarter of the layers, then none; without a GPU, none."""
    if not gpu:
        return [0]
    if requested >= 0:
        return [requested]
    tries = [AUTO_GPU_LAYERS]
    for share in (3, 2, 1, 0):
        layers = max(0, n_layers) * share // 4
        if layers not in tries:
            tries.append(layers)
    return tries


def device_text(layers: int, n_layers: int, gpu: bool) -> str:
    """Where the model runs, in a word or three: "CPU", "GPU", "GPU, 16 of 32 layers"."""
    if not gpu or layers == 0:
        return "CPU"
    if layers < 0 or layers >= n_layers:
        return "GPU"
    return f"GPU, {layers} of {n_layers} layers"


def trained_context(hparams: dict, arch_name: str) -> int | None:
    """The context length a GGUF says its model was trained for; None when it says nothing usable."""
    value = hparams.get(f"{arch_name}.context_length")
    return value if is_count(value) and value > 0 else None


def context_to_ask(requested: int, trained: int | None) -> tuple[int, str | None]:
    """The context to give llama.cpp, and a note when it is shorter than the one asked for."""
    if trained is None or 0 < requested <= trained:
        return (requested if requested > 0 else 4096), None     # 0 and nothing said: the engine's default
    if requested <= 0:                                 # "as long as the model allows"
        return trained, None
    return trained, (f"The context is {trained:,} tokens, not the {requested:,} asked for: this model was "
                     "trained on contexts up to that length, and past it its answers would degrade.")


def open_fitted(path: Path, ctx: JobContext | None, options: dict, base, gpu: bool) -> tuple[object, Fit]:
    """Load `path` (`base`: its BaseModelInfo) with llama-cpp-python's `options`, n_gpu_layers and n_ctx
    fitted as above. `gpu`: whether llama.cpp has a GPU. A try that runs out of memory frees what it took
    before the next."""
    ctx = ctx or JobContext()
    n_layers, trained = base.n_layers, trained_context(base.hparams, base.arch_name)
    kwargs = {k: v for k, v in options.items() if v is not None and k != "n_gpu_layers"}
    kwargs["n_ctx"], context_note = context_to_ask(int(options.get("n_ctx") or 0), trained)
    requested = int(options.get("n_gpu_layers", AUTO_GPU_LAYERS))
    tries = gpu_layer_tries(requested, n_layers, gpu)
    for i, layers in enumerate(tries):
        try:
            llm = open_model(path, ctx, n_gpu_layers=layers, **kwargs)
        except OutOfMemoryLoadError as exc:
            if i + 1 == len(tries) and i > 0:       # automatic, and not even the CPU alone had room
                raise OutOfMemoryLoadError(path, exc.problem.replace(FEWER_LAYERS, "") +
                                           f" (tried {len(tries)} GPU layer counts down to none)") from exc
            if i + 1 == len(tries):
                raise
            fewer = tries[i + 1]
            log.info("%s: %s; trying %d of %d layers on the GPU", path.name, exc.problem, fewer, n_layers)
            ctx.report(0.0, 1.0, f"the model does not fit the GPU's memory: trying {fewer} of {n_layers} layers")
            gc.collect()                    # the failed Llama's model and context go before the next try
            release_free_memory()
            continue
        fit = Fit(layers, device_text(layers, n_layers, gpu), kwargs["n_ctx"], trained,
                  [context_note] if context_note else [])
        if i > 0:
            fit.notes.append((f"Only {layers} of the model's {n_layers} layers fit the GPU's memory; the rest run "
                              "on the CPU" if layers else "The model does not fit the GPU's memory; it runs on the CPU")
                             + ", which is slower. A smaller quantization or a shorter context fits more.")
        weights = sum(part.stat().st_size for part in [path, *base.gguf_parts])
        kv = fit.n_ctx * kv_bytes_per_token(llm, base.arch_name, options.get("type_k") == 0)
        unified = gpu and sys.platform == "darwin"             # Apple silicon: the GPU uses the same memory
        fit.host_bytes = host_bytes(weights, kv, fit, n_layers, unified)
        note = memory_note(fit.host_bytes, total_memory())
        if note:
            fit.notes.append(note)
        return llm, fit
    raise AssertionError("unreachable: the last try returns or raises")


def memory_note(need: int, total: int | None) -> str | None:
    """What to tell the user when `need` bytes (weights and KV cache the CPU side holds) come near or past
    `total`, the computer's memory; None when they fit."""
    if fits_memory(need, total):
        return None
    return (f"This model needs about {need / 1e9:.1f} GB of memory and this computer has {total / 1e9:.1f} GB, so "
            "its answers will be very slow while the system reads it from disk again and again. A smaller "
            "quantization of it (Q4_K_M takes about 0.6 GB per billion parameters) or a shorter context fits better.")


def host_bytes(weights: int, kv: int, fit: Fit, n_layers: int, unified: bool) -> int:
    """The bytes of weights and KV cache in the computer's memory: all of them with the model on the CPU
    or on a GPU that shares the computer's memory (Apple silicon); the CPU layers' share otherwise."""
    if unified or fit.gpu_layers == 0:
        return weights + kv
    if fit.gpu_layers < 0 or fit.gpu_layers >= n_layers:
        return 0
    return int((weights + kv) * (n_layers - fit.gpu_layers) / max(1, n_layers))
