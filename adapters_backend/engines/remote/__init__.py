"""Remote engines: the same adapter controls, with the model running on a serving system.

Each engine's `load()` takes the server's URL instead of a model file; `set_adapters()` maps the
mix onto what that server can do per request, and says plainly (EngineError) what it cannot:

=============  ===============================  ======================================================
engine id      server                           adapters per request
=============  ===============================  ======================================================
llama-server   llama.cpp ``llama-server``       several at any strength (``lora`` field); only those
                                                the server was started with (``--lora``)
vllm           vLLM (``--enable-lora``)         one, at full strength (vLLM has no strength); can
                                                load new ones at run time if the server allows it
lorax          LoRAX                            one at full strength, or several merged with weights
=============  ===============================  ======================================================

The modules import httpx2 only; importing this package does not connect anywhere.
"""
from __future__ import annotations

REMOTE_ENGINES = ("llama-server", "vllm", "lorax")


def is_remote_engine(engine_id: str | None) -> bool:
    return engine_id in REMOTE_ENGINES


__all__ = ["REMOTE_ENGINES", "is_remote_engine"]
