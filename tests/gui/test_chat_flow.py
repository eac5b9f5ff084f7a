"""The core experience through real widgets: the demo model loads on first run, adapters are mixed
with switches and sliders, replies stream, and each reply is exactly what the engine gives for the
same mix and seed when run directly. Stop, regenerate, edit-and-resend; restart restores everything."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, Qt

# Qt warnings fail the test, except the offscreen platform's note about size hints of dialogs.
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

PROMPT = "What is the capital of France?"
TIMEOUT = 60000


def click_switch(qtbot, row):
    """Click the on/off box itself (the left end of the check box), as a user does."""
    sw = row.switch
    qtbot.mouseClick(sw, Qt.MouseButton.LeftButton, pos=QPoint(8, sw.height() // 2))


def greedy(chat, max_tokens=40):
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(max_tokens)
    chat.sampling.seed.setValue(7)


def ask(qtbot, app, text) -> str:
    chat = app.window.chat
    host = app.state.host
    pieces = []
    host.token_streamed.connect(lambda _rid, t, _n: pieces.append(t))
    chat.prompt.setPlainText(text)
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    assert chat.generating
    # Engine signals come from the engine thread; wait on what the GUI thread shows instead.
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    reply = chat.last_reply_text()
    assert reply == "".join(pieces)
    assert chat.conversation.messages[-1].info.get("finish") != "cancelled"
    return reply, pieces


def test_first_run_demo_mix_and_streaming(make_app, demo_engine, direct_reply, qtbot):
    demo, _factory = demo_engine
    app = make_app().start()
    state, w = app.state, app.window
    assert state.is_demo_loaded()
    assert "demo" in w.chat.banner.text().lower() and w.chat.banner.isVisible()
    # First run: the demo adapters are in the library and in the mixer, switched off.
    names = [a.name for a in demo.demo_adapters()]
    qtbot.waitUntil(lambda: len(w.mixer.rows) == len(names), timeout=TIMEOUT)
    assert [r.name_label.full_text() for r in w.mixer.rows] == names
    assert not any(r.switch.isChecked() for r in w.mixer.rows)

    greedy(w.chat)
    base_reply, pieces = ask(qtbot, app, PROMPT)
    assert base_reply.strip() and len(pieces) > 1                  # streamed: first token at once, then batches
    params = w.chat.sampling.params()
    messages = [("user", PROMPT)]
    assert base_reply == direct_reply(state.settings, state.model.path, [], messages, params)

    # Two adapters on, one slider moved: the next answer follows the new mix, without a reload.
    shout, pirate = w.mixer.rows[0], w.mixer.rows[1]
    click_switch(qtbot, shout)
    click_switch(qtbot, pirate)
    assert shout.switch.isChecked() and pirate.switch.isChecked() and shout.slider.isEnabled()
    shout.slider.setFocus()
    for _ in range(4):                                               # 4 × PageDown = −1.0 (page step 0.25)
        qtbot.keyClick(shout.slider, Qt.Key.Key_PageDown)
    pirate.spin.setValue(0.8)
    assert shout.spin.value() == pytest.approx(0.0)
    qtbot.mouseDClick(shout.slider, Qt.MouseButton.LeftButton)      # double-click resets to 1
    assert state.mix_model.entry(0).strength == pytest.approx(1.0)
    mix = state.engine_mix()
    assert [round(a.strength, 3) for a in mix] == [1.0, 0.8]
    loads_before = state.settings.get("models/last_path")
    w.chat.new_chat()
    mixed_reply, _ = ask(qtbot, app, PROMPT)
    assert mixed_reply == direct_reply(state.settings, state.model.path, mix, messages, params)
    assert mixed_reply != base_reply
    assert state.settings.get("models/last_path") == loads_before
    # Each reply records the mix it was made with.
    assert "shout +1.00" in w.chat.conversation.messages[-1].info["mix"]


def test_stop_regenerate_edit_resend(make_app, demo_engine, qtbot):
    app = make_app().start()
    chat = app.window.chat
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(2000)
    chat.prompt.setPlainText("Tell me a joke.")
    # Stop: the generation ends as cancelled long before max_tokens, and the app is ready again.
    chat.send()
    qtbot.waitUntil(lambda: chat._arrival.tokens > 0, timeout=TIMEOUT)
    assert chat.stop_button.isEnabled()
    qtbot.mouseClick(chat.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    info = chat.conversation.messages[-1].info
    assert info["finish"] == "cancelled" and info["tokens"] < 2000
    assert chat.send_button.isEnabled()

    # Regenerate replaces the last answer (same seed, greedy: the same text).
    chat.sampling.max_tokens.setValue(30)
    first, _ = ask(qtbot, app, PROMPT)
    n = len(chat.conversation.messages)
    chat.regenerate()
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert len(chat.conversation.messages) == n
    assert chat.last_reply_text() == first

    # Edit-and-resend: the edited question replaces everything after it.
    user_widgets = [m for m in chat._message_widgets() if m.role == "user"]
    target = user_widgets[-1]
    qtbot.mouseClick(target.edit_button, Qt.MouseButton.LeftButton)
    target._editor.setPlainText("What color is a banana?")
    target._submit_edit()
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    roles = [(m.role, m.content) for m in chat.conversation.messages]
    assert roles[-2] == ("user", "What color is a banana?")
    assert roles[-1][0] == "assistant" and roles[-1][1] == chat.last_reply_text()
    assert PROMPT not in [c for _, c in roles]


def test_restart_restores_conversations_library_and_mix(make_app, demo_engine, qtbot):
    app = make_app().start()
    w = app.window
    greedy(w.chat, 20)
    qtbot.waitUntil(lambda: len(w.mixer.rows) == 3, timeout=TIMEOUT)
    click_switch(qtbot, w.mixer.rows[2])
    w.mixer.rows[2].spin.setValue(0.5)
    reply, _ = ask(qtbot, app, PROMPT)
    conv_id = w.chat.conversation.id
    library = [e.id for e in app.state.library_model.entries()]
    app.close()

    again = make_app().start()
    w2 = again.window
    qtbot.waitUntil(lambda: again.state.conversations.rowCount() == 1, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: w2.chat.conversation is not None, timeout=TIMEOUT)
    assert w2.chat.conversation.id == conv_id
    assert w2.chat.transcript_texts() == [("user", PROMPT), ("assistant", reply)]
    assert [e.id for e in again.state.library_model.entries()] == library
    entries = again.state.mix_model.entries()
    assert [(e.enabled, e.strength) for e in entries] == [(False, 1.0), (False, 1.0), (True, 0.5)]


def test_an_answer_cut_short_says_by_what(make_app, demo_engine, qtbot):
    """An answer that ends at Max tokens says so under it, so it is not taken for the model's whole answer;
    one ended by the context says that instead."""
    from desktop_app.widgets.chat_reply import info_text
    app = make_app().start()
    chat = app.window.chat
    greedy(chat, max_tokens=3)
    ask(qtbot, app, PROMPT)
    info = chat.conversation.messages[-1].info
    assert info["finish"] == "length" and info["tokens"] == 3
    assert "cut at Max tokens" in chat._message_widgets()[-1].info.full_text()
    assert "cut: the context is full" in info_text({**info, "max_tokens": 512})
    assert "cut" not in info_text({**info, "finish": "stop"})
