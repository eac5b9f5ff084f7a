"""Chat in the app through a remote llama-server (real, built from llama.cpp's sources): connect from the
model picker, switch the demo's "shout" adapter on in the mixer, and the reply changes as the server's
adapter makes it; off again, the base answer comes back."""
from __future__ import annotations

import pytest
from fixtures.llama_server import llama_server  # noqa: F401  (pytest fixture)
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints"),
              pytest.mark.timeout(2400)]   # the first run may build llama-server

TIMEOUT = 120000


def _caps(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(c.isupper() for c in letters) / max(len(letters), 1)


def _ask(qtbot, chat, text: str) -> str:
    chat.prompt.setPlainText(text)
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    return chat.last_reply_text()


def test_chat_through_llama_server_with_the_mixer(make_app, demo_engine, llama_server, qtbot):  # noqa: F811
    url, _loras = llama_server
    app = make_app().start()
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: state.library_model.rowCount() >= 3, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: state.model is not None, timeout=TIMEOUT)          # the demo first

    dlg = w.model_picker.connect_server()
    dlg.url.setText(url + "/")
    assert dlg.kind.currentData() == "llama-server"
    with qtbot.waitSignal(state.model_changed, timeout=TIMEOUT):
        qtbot.mouseClick(dlg.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok),
                         Qt.MouseButton.LeftButton)
    assert state.model is not None and state.model.engine == "llama-server", state.errors.history
    assert state.model.path == url
    qtbot.waitUntil(lambda: state.compat == {}, timeout=TIMEOUT)   # nothing local to check: all usable

    chat = w.chat
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(32)
    chat.sampling.seed.setValue(1)
    shout = next(e for e in state.library_model.entries() if e.name == "shout")
    for e in list(state.mix_model.entries()):
        state.mix_model.remove_adapter(e.adapter_id)
    base = _ask(qtbot, chat, "What is the capital of France?")
    assert base and _caps(base) < 0.3, base
    assert state.add_to_mix(shout.id)
    loud = _ask(qtbot, chat, "What is the capital of France?")
    assert _caps(loud) > 0.8, (loud, state.errors.history)
    state.mix_model.remove_adapter(shout.id)
    assert _ask(qtbot, chat, "What is the capital of France?") == base     # no stale adapter on the server


def test_the_server_is_connected_again_at_the_next_start_unless_it_took_a_key(
        make_app, demo_engine, llama_server, qtbot):  # noqa: F811
    demo, _ = demo_engine
    url, _loras = llama_server
    app = make_app().start()
    with qtbot.waitSignal(app.state.model_changed, timeout=TIMEOUT):
        app.state.load_model(url, "llama-server")
    assert app.state.model.path == url, app.state.errors.history
    app.close()
    again = make_app().start()                     # "restart": the server, not the demo
    assert again.state.model.path == url and again.state.model.engine == "llama-server"
    # Connected with an API key (not stored anywhere): the next start keeps to the model before it.
    with qtbot.waitSignal(again.state.model_changed, timeout=TIMEOUT):
        again.state.load_model(str(demo.demo_model_path()), "llama.cpp")
    with qtbot.waitSignal(again.state.model_changed, timeout=TIMEOUT):
        again.state.load_model(url, "llama-server", options={"api_key": "secret"})
    assert again.state.model.path == url
    again.close()
    third = make_app().start()
    assert third.state.model.path == str(demo.demo_model_path()) and third.state.errors.history == []
