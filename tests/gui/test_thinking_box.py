"""The chat's Think box: shown for a thinking model whose chat template can switch reasoning off
(Qwen3 …), hidden for others; unticked, the answer is asked for without reasoning, in Compare too
(and it is remembered)."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]
TIMEOUT = 60000


def test_the_think_box_follows_the_model_and_reaches_the_engine(make_app, demo_engine, vocab_gguf, tmp_path,
                                                                 qtbot, monkeypatch):
    from tests.engines import engine_models as em

    thinker = em.random_model(tmp_path / "thinker.gguf", vocab_gguf, em.QWEN3_LIKE_TEMPLATE)
    app = make_app().start()
    chat, state = app.window.chat, app.state
    assert not chat.think_box.isVisibleTo(chat)                          # the demo model has no switch
    asked = []
    generate = state.generate
    monkeypatch.setattr(state, "generate", lambda messages, params, *args, **kw: (
        asked.append(dict(params)), generate(messages, params, *args, **kw))[1])
    state.load_model(str(thinker))
    qtbot.waitUntil(lambda: state.model is not None and state.model.path == str(thinker), timeout=TIMEOUT)
    assert chat.think_box.isVisibleTo(chat) and chat.think_box.isChecked()
    chat.think_box.setChecked(False)
    chat.sampling.max_tokens.setValue(2)
    chat.prompt.setPlainText("What is 2 + 2?")
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert asked[-1]["thinking"] is False and chat.conversation.messages[-1].role == "assistant"
    compare = app.window.show_view("compare")                           # Compare follows the Think box
    compare.prompt.setPlainText("What is 2 + 2?")
    compare.sampling.max_tokens.setValue(2)
    qtbot.mouseClick(compare.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not compare.collector.running, timeout=TIMEOUT)
    assert [a.get("thinking") for a in asked[-3:]] == [False, False, False]
    app.close()
    again = make_app()
    assert not again.window.chat.think_box.isChecked()                  # remembered
