"""desktop_app/serve_access.py without Qt: serves the demo model, falls back to a free port when
the wanted one is taken, stops, and keeps web pages out unless the user allowed their origin."""
from __future__ import annotations

import socket

import openai
from serve_testlib import ask, raw


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


def test_web_pages_are_kept_out_unless_allowed():
    from desktop_app.serve_access import ServeAccess

    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    access = ServeAccess()
    try:
        url = access.start(None, port=0)["url"]
        body = b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}'
        assert raw(url, "POST", "/v1/chat/completions", body, {"Content-Type": "text/plain"})[0] == 415
        assert raw(url, "GET", "/v1/models", None, {"Host": "evil.example"})[0] == 403
        status, headers, _ = raw(url, "OPTIONS", "/v1/chat/completions", None,
                                 {"Origin": "http://localhost:3000", **preflight})
        assert status == 403 and "access-control-allow-origin" not in headers      # off by default
        url = access.start(None, port=0, allow_origins=["http://localhost:3000"])["url"]
        status, headers, _ = raw(url, "OPTIONS", "/v1/chat/completions", None,
                                 {"Origin": "http://localhost:3000", **preflight})
        assert status == 200 and headers["access-control-allow-origin"] == "http://localhost:3000"
        assert raw(url, "GET", "/v1/models", None, {"Origin": "https://evil.example"})[0] == 403
    finally:
        access.stop()
