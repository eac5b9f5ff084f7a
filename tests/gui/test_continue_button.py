"""Continue on an answer cut at Max tokens (or stopped) writes the rest into the same answer, on the demo
model: the answer becomes the one written in one go, its token count adds up, and it stays one message."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from desktop_app.widgets.chat_reply import continued_info, info_text

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]
PROMPT = "What is the capital of France?"
TIMEOUT = 60000


def greedy(chat, max_tokens):
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(max_tokens)
    chat.sampling.seed.setValue(7)


def test_continue_writes_the_rest_of_a_cut_answer(make_app, demo_engine, direct_reply, qtbot):
    app = make_app().start()
    chat, state = app.window.chat, app.state
    greedy(chat, 4)
    chat.prompt.setPlainText(PROMPT)
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    you, answer = chat._message_widgets()
    cut = answer.text()
    assert answer.message.info["finish"] == "length" and "cut at Max tokens" in answer.info.full_text()
    assert answer.continue_button.isVisible() and not you.continue_button.isVisible()

    greedy(chat, 40)
    qtbot.mouseClick(answer.continue_button, Qt.MouseButton.LeftButton)
    assert chat.generating and not answer.continue_button.isVisible()
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)

    whole = direct_reply(state.settings, state.model.path, [], [("user", PROMPT)], chat.sampling.params())
    assert answer.text() == whole and whole.startswith(cut) and len(whole) > len(cut)
    assert chat._message_widgets() == [you, answer]                     # the same answer, written further
    msgs = chat.conversation.messages
    assert [m.role for m in msgs] == ["user", "assistant"] and msgs[1].content == whole
    assert msgs[1].info["finish"] == "stop" and msgs[1].info["tokens"] > 4
    assert "tokens_before" not in msgs[1].info and not answer.continue_button.isVisible()
    saved = next(c for c in state.conversations.store.load_all() if c.id == chat.conversation.id)
    assert [m.content for m in saved.messages] == [PROMPT, whole]


def test_continue_is_not_offered_for_an_answer_that_ended(make_app, demo_engine, qtbot):
    app = make_app().start()
    chat = app.window.chat
    greedy(chat, 40)
    chat.prompt.setPlainText(PROMPT)
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    answer = chat._message_widgets()[-1]
    assert answer.message.info["finish"] == "stop" and not answer.continue_button.isVisible()
    chat.continue_answer()                                              # the menu's action does nothing
    assert not chat.generating and chat._message_widgets()[-1] is answer


def test_an_answer_stopped_can_be_continued(make_app, demo_engine, qtbot):
    from tests.gui.test_switch_while_answering import start_long_answer
    app = make_app().start()
    chat = app.window.chat
    start_long_answer(app, qtbot)                           # the demo made to ramble, so Stop comes in time
    qtbot.mouseClick(chat.stop_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    you, answer = chat._message_widgets()
    stopped = answer.message.content
    assert answer.message.info["finish"] == "cancelled" and "stopped" in answer.info.full_text()
    assert answer.continue_button.isVisible()

    chat.sampling.max_tokens.setValue(6)
    qtbot.mouseClick(answer.continue_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    msg = chat.conversation.messages[-1]
    assert chat._message_widgets() == [you, answer] and msg is answer.message
    assert msg.content.startswith(stopped) and msg.info["finish"] in ("length", "stop")
    assert len(msg.content) > len(stopped) or msg.info["finish"] == "stop"   # (a ramble may end at once)


def test_a_continued_answer_says_when_another_mix_wrote_the_rest():
    before = {"model": "Demo", "mix": "no adapters", "tokens": 4, "finish": "length", "max_tokens": 4,
              "error": "x"}
    info = continued_info(before, {"model": "Demo", "mix": "pirate +1.00", "max_tokens": 40})
    assert info["mix"] == "no adapters, then pirate +1.00" and info["model"] == "Demo"
    assert info["tokens_before"] == 4 and info["max_tokens"] == 44 and "error" not in info
    info.update({"tokens": 4 + 40, "finish": "length"})
    assert "cut at Max tokens" in info_text(info)
    info.update({"tokens": 4 + 10})                                     # the context ended it, not Max tokens
    assert "cut: the context is full" in info_text(info)
