"""Opening another chat while an answer is being written stops it, and what was written stays with the
chat it answers: it went into the chat opened instead (and was saved there), the asking chat kept only
its question. A chat deleted while answering is not written back."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]
TIMEOUT = 30000


def start_long_answer(app, qtbot):
    """The demo model made to ramble (an adapter at −2, hot sampling) so an answer runs long enough."""
    chat = app.window.chat
    chat.sampling.max_tokens.setValue(4000)
    chat.sampling.temperature.setValue(1.5)
    row = app.window.mixer.rows[0]
    row.switch.setChecked(True)
    row.spin.setValue(-2.0)
    chat.prompt.setPlainText("Tell me a very long story about everything.")
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(chat.last_reply_text()) > 20, timeout=TIMEOUT)
    assert chat.generating
    return chat.conversation


def saved(app, conv):
    return next((c for c in app.state.conversations.store.load_all() if c.id == conv.id), None)


@pytest.mark.parametrize("how", ["new chat", "other chat"])
def test_an_answer_stopped_by_opening_another_chat_stays_with_its_own(make_app, demo_engine, qtbot, how):
    app = make_app().start()
    chat = app.window.chat
    if how == "other chat":
        chat.prompt.setPlainText("What is the capital of France?")
        qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
        other = chat.conversation
        before = [(m.role, m.content) for m in other.messages]
        chat.new_chat()
    asking = start_long_answer(app, qtbot)
    if how == "new chat":
        chat.new_chat()
    else:
        app.window.chat.open_conversation(other)
    opened = chat.conversation
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert opened is not asking
    assert [m.role for m in asking.messages] == ["user", "assistant"]
    assert asking.messages[1].content and asking.messages[1].info["finish"] == "cancelled"
    assert [(m.role, m.content) for m in saved(app, asking).messages] == [(m.role, m.content) for m in asking.messages]
    if how == "new chat":
        assert opened.messages == [] and saved(app, opened) is None
    else:
        assert [(m.role, m.content) for m in opened.messages] == before
        assert [(m.role, m.content) for m in saved(app, opened).messages] == before
        assert [w.text() for w in chat._message_widgets()] == [c for _r, c in before]


def test_a_chat_deleted_while_answering_is_not_written_back(make_app, demo_engine, qtbot):
    app = make_app().start()
    chat = app.window.chat
    asking = start_long_answer(app, qtbot)
    chat.delete_conversation(app.state.conversations.row_of(asking.id))
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    qtbot.wait(100)
    assert saved(app, asking) is None and app.state.conversations.row_of(asking.id) < 0
