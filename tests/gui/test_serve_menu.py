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
