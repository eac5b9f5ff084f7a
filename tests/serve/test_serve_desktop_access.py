"""desktop_app/serve_access.py without Qt: serves the demo model, falls back to a free port when
the wanted one is taken, and stops."""
from __future__ import annotations

import socket

import openai

from serve_testlib import ask


def test_start_falls_back_to_a_free_port_and_stops():
    from desktop_app.serve_access import ServeAccess
    from desktop_app.workers.engine_host import LoadedModel

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    taken = busy.getsockname()[1]
    access = ServeAccess()
    try:
        info = access.start(LoadedModel("/nowhere/model-folder", "torch", "model-folder"), port=taken)
        assert info["model"] == "tiny-deck-demo" and f"Port {taken} was taken" in info["note"]
        assert "demo model is served" in info["note"] and access.running
        with openai.OpenAI(base_url=f"{info['url']}/v1", api_key="unused", max_retries=0, timeout=60) as c:
            assert "Paris" in ask(c)
    finally:
        access.stop()
        busy.close()
    assert not access.running and access.url == ""
