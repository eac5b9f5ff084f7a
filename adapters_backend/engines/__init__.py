"""Inference engines behind one small interface (`base.Engine`).

Engine modules import their heavy dependency (llama-cpp-python, torch) only when an engine is created,
so importing this package is cheap and never fails for a missing optional dependency.
"""
from __future__ import annotations

import importlib.util

from .base import ActiveAdapter, ChatMessage, Engine, EngineCapabilities, SamplingParams, TokenChunk

# engine id -> (module that implements it, class name, the import it needs)
ENGINES = {
    "llama.cpp": ("adapters_backend.engines.llama_cpp_engine", "LlamaCppEngine", "llama_cpp"),
    "torch": ("adapters_backend.engines.torch_engine", "TorchEngine", "torch"),
    # Remote engines: load() takes a server URL (httpx2 is the HTTP client huggingface_hub already uses).
    "llama-server": ("adapters_backend.engines.remote.llama_server", "LlamaServerEngine", "httpx2"),
    "vllm": ("adapters_backend.engines.remote.vllm", "VllmEngine", "httpx2"),
    "lorax": ("adapters_backend.engines.remote.lorax", "LoraxEngine", "httpx2"),
}


def _present(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def available_engines() -> list[str]:
    """Ids of the engines whose module and dependency are installed (no heavy import happens)."""
    return [eid for eid, (mod, _cls, dep) in ENGINES.items() if _present(dep) and _present(mod)]


def create_engine(engine_id: str, **options) -> Engine:
    """Instantiate an engine by id; EngineUnavailable names what is missing."""
    from ..errors import EngineUnavailable

    if engine_id not in ENGINES:
        raise EngineUnavailable(f"unknown engine {engine_id!r}; known: {', '.join(ENGINES)}")
    mod, cls, dep = ENGINES[engine_id]
    if not (_present(dep) and _present(mod)):
        raise EngineUnavailable(f"the {engine_id} engine is not available: the Python package '{dep}' or the "
                                f"module {mod} is missing")
    return getattr(importlib.import_module(mod), cls)(**options)


__all__ = ["ENGINES", "ActiveAdapter", "ChatMessage", "Engine", "EngineCapabilities", "SamplingParams",
           "TokenChunk", "available_engines", "create_engine"]
