"""`loradeck serve`: an OpenAI-compatible HTTP server on one local model, with LoRA adapters chosen per
request (an ``adapters`` field, ``<lora:name:strength>`` tags, or a saved mix preset as ``model``).

    app.py       the FastAPI routes (create_app)
    guard.py     what keeps web pages out: the Host and Origin checks, CORS for allowed pages only
    generation.py  one request's run: stop strings, waiting for its turn, streamed (SSE) or whole replies
    worker.py    the one engine and the one thread that runs requests, in order
    mix.py       a request's adapter mix: tags, the ``adapters`` field, presets, strength and compat checks
    resolver.py  adapter names -> files (library, demo adapters, paths) and saved presets
    protocol.py  OpenAI request fields -> engine inputs, engine chunks -> OpenAI response shapes
    errors.py    OpenAI-style JSON errors, without local paths for clients on other machines
    runner.py    uvicorn in the foreground (CLI) or a background thread (desktop app, tests)
"""
from .app import create_app

__all__ = ["create_app"]
