"""Tools ▸ Local API server: starts `loradeck serve` for the loaded (demo) model, shows its address
in the status bar, answers the openai client, and stops when unticked."""
from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("uvicorn")


def test_menu_starts_and_stops_the_server(make_app, demo_engine, qtbot):
    app = make_app().start()
    win = app.window
    win.serve_action.trigger()                                  # tick
    qtbot.waitUntil(lambda: win._serve_label is not None and win._serve_label.isVisible(), timeout=60000)
    url = win._serve_label.text().removeprefix("API: ")
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1") and url in win.serve_action.text()
    with openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=60) as c:
        r = c.chat.completions.create(model="tiny-deck-demo", temperature=0, max_tokens=40,
                                      messages=[{"role": "user", "content": "What is the capital of France?"}],
                                      extra_body={"adapters": [{"name": "shout", "strength": 1}]})
        assert "PARIS" in r.choices[0].message.content
    qtbot.waitUntil(win.serve_action.isEnabled, timeout=10000)  # greyed while it starts
    win.serve_action.trigger()                                  # untick
    qtbot.waitUntil(lambda: not win._serve_label.isVisible(), timeout=30000)
    assert not win._serve.running and win.serve_action.isEnabled()
    with openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=5) as c, \
            pytest.raises(openai.APIConnectionError):
        c.models.list()


def test_allowed_web_pages_come_from_settings(make_app, demo_engine, qtbot):
    """Off by default; an origin entered in Settings (checked there) lets that page, and only it, use the server."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
    from serve_testlib import raw

    app = make_app().start()
    win = app.window
    assert app.state.settings.server_origins == []
    win.show_settings()
    dlg = win.settings_dialog
    dlg.origins.setText("localhost:3000")                       # no scheme: refused, the dialog stays open
    dlg.accept()
    assert dlg.isVisible() and "http://localhost:3000" in dlg.origins_error.text()
    dlg.origins.setText("http://localhost:3000/")
    dlg.accept()
    assert not dlg.isVisible() and app.state.settings.server_origins == ["http://localhost:3000"]

    win.serve_action.trigger()
    qtbot.waitUntil(lambda: win._serve_label is not None and win._serve_label.isVisible(), timeout=60000)
    base = win._serve_label.text().removeprefix("API: ").removesuffix("/v1")
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    status, headers, _ = raw(base, "OPTIONS", "/v1/chat/completions", None, {"Origin": "http://localhost:3000", **preflight})
    assert status == 200 and headers["access-control-allow-origin"] == "http://localhost:3000"
    assert raw(base, "OPTIONS", "/v1/chat/completions", None, {"Origin": "https://evil.example", **preflight})[0] == 403
    qtbot.waitUntil(win.serve_action.isEnabled, timeout=10000)
    win.serve_action.trigger()
    qtbot.waitUntil(lambda: not win._serve_label.isVisible(), timeout=30000)


def test_the_api_reports_the_context_length_of_settings(make_app, demo_engine, qtbot):
    """The server the app starts uses (and reports) Settings' context length and GPU layers, as the chat
    does."""
    import json
    import urllib.request

    app = make_app().start()
    win = app.window
    win.show_settings()
    win.settings_dialog.n_ctx.setValue(384)   # the demo model allows 512
    win.settings_dialog.gpu_layers.setValue(0)                 # CPU only, whatever llama.cpp has
    win.settings_dialog.accept()
    assert app.state.settings.n_ctx == 384 and app.state.settings.n_gpu_layers == 0
    win.serve_action.trigger()
    qtbot.waitUntil(lambda: win._serve_label is not None and win._serve_label.isVisible(), timeout=60000)
    url = win._serve_label.text().removeprefix("API: ")
    with urllib.request.urlopen(f"{url}/models", timeout=30) as r:
        models = json.loads(r.read())["data"]
    assert models[0]["n_ctx"] == 384 and models[0]["device"] == "CPU"
    qtbot.waitUntil(win.serve_action.isEnabled, timeout=10000)
    win.serve_action.trigger()
    qtbot.waitUntil(lambda: not win._serve_label.isVisible(), timeout=30000)
