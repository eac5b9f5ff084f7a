"""At start the model used last is opened again: a file or folder that is gone, and a server or Hub
model that cannot be had now, are said (they opened the demo without a word, and a server or a Hub
model was never even tried), and the demo opens instead; a server or Hub model stays the last model,
tried again at the next start, a file that is gone does not."""
from __future__ import annotations

import socket

import pytest

from desktop_app.settings import AppSettings

TIMEOUT = 30000


def _last(path: str, engine: str) -> None:
    s = AppSettings()
    s.set_last_model(path, engine)
    s.sync()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]          # nothing listens there once the socket is closed


@pytest.mark.parametrize(("engine", "how"), [("llama.cpp", "File → Open GGUF model…"),
                                             ("torch", "File → Open model folder…")])
def test_a_last_model_that_is_gone_is_said_and_the_demo_opens(make_app, demo_engine, qtbot, tmp_path, engine, how):
    demo, _ = demo_engine
    gone = tmp_path / "moved-away" / ("model.gguf" if engine == "llama.cpp" else "model-folder")
    _last(str(gone), engine)
    app = make_app().start(wait_model=False)          # the reason comes first, then the demo
    qtbot.waitUntil(lambda: app.state.model is not None, timeout=TIMEOUT)
    assert app.state.model.path == str(demo.demo_model_path())
    assert app.state.settings.last_model["path"] == str(demo.demo_model_path())    # a file gone stays gone
    assert app.state.errors.history == [(
        "Opening the last model", f"{gone}: the model used last time is no longer there (moved, renamed or "
                                  f"deleted), so LoRA Deck opened the demo model. Open it from where it is now: {how}"
                                  + (", or drop it on the window." if engine == "llama.cpp" else "."))]


@pytest.mark.parametrize(("path", "engine", "why"), [
    ("http://127.0.0.1:{closed}", "llama-server", "cannot reach the llama-server at"),
    ("someone/some-model", "torch", "The Hugging Face Hub is switched off here"),   # HF_HUB_OFFLINE in tests
])
def test_a_server_or_hub_model_that_cannot_be_had_now_is_tried_said_and_the_demo_opens(
        make_app, demo_engine, qtbot, path, engine, why):
    demo, _ = demo_engine
    path = path.format(closed=_closed_port())
    _last(path, engine)
    app = make_app().start(wait_model=False)          # the reason comes first, then the demo
    qtbot.waitUntil(lambda: app.state.model is not None, timeout=TIMEOUT)
    assert app.state.model.path == str(demo.demo_model_path())
    [(context, message)] = app.state.errors.history
    assert context.startswith("Loading ") and why in message
    # The demo only stands in: the server or Hub model stays the last model, tried at the next start.
    assert app.state.settings.last_model == {"path": path, "engine": engine}
    app.close()
    again = make_app().start(wait_model=False)
    qtbot.waitUntil(lambda: again.state.model is not None, timeout=TIMEOUT)
    assert [m for _c, m in again.state.errors.history] == [message]
