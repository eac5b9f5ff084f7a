"""A long message (a pasted document) is shown by its beginning; "Show all" opens the whole text in a
box of a fixed height, so the chat column never lays out the whole text again at each paint. Copy,
edit and the conversation always have the whole text; an answer being written is shown whole."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication

from desktop_app.conversation_store import Conversation, Message
from desktop_app.widgets.message_widget import LONG_CHARS, PREVIEW_CHARS, MessageWidget

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]


def document(chars: int) -> str:
    para = "The harbour keeper wrote down every ship that came in, with the wind and the tide. " * 5
    return "\n\n".join([para.strip()] * (chars // len(para) + 1))[:chars].strip()


def test_a_pasted_document_is_shown_by_its_beginning_and_whole_on_request(make_app, demo_engine, app_env, qtbot):
    app = make_app().start()
    chat = app.window.chat
    chat.sampling.max_tokens.setValue(4)
    text = document(40_000)
    chat.prompt.setPlainText(text)
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=60000)
    you = chat._message_widgets()[0]
    assert you.text() == text
    assert len(you.body.text()) <= PREVIEW_CHARS + 2 and you.body.text().endswith(" …")
    assert text.startswith(you.body.text()[:-2]) and not you.body.text()[-3].isspace()    # ends at a word
    assert you.whole_button.isVisible() and f"{len(text):,} characters" in you.whole_button.text()

    qtbot.mouseClick(you.whole_button, Qt.MouseButton.LeftButton)
    assert you.whole is not None and you.whole.toPlainText() == text and you.whole.isReadOnly()
    assert not you.body.isVisible() and you.whole_button.text() == "Show less"
    height = you.whole.height()
    you.whole.setPlainText(text + text)                           # its height never follows the text
    assert you.whole.height() == height < chat.scroll.viewport().height()

    qtbot.mouseClick(you.copy_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == text
    qtbot.mouseClick(you.whole_button, Qt.MouseButton.LeftButton)
    assert you.whole is None and you.body.isVisible() and "characters" in you.whole_button.text()

    qtbot.mouseClick(you.edit_button, Qt.MouseButton.LeftButton)  # editing starts from the whole text
    assert you._editor.toPlainText() == text and not you.whole_button.isVisible()
    you._end_edit()
    assert you.whole_button.isVisible() and len(you.body.text()) <= PREVIEW_CHARS + 2

    assert chat.conversation.messages[0].content == text


def test_an_answer_is_shown_whole_while_written_and_shortened_when_opened_again(make_app, qtbot):
    app = make_app().start()
    long_answer = document(LONG_CHARS + 500)
    streamed = MessageWidget("assistant")
    qtbot.addWidget(streamed)
    for end in range(0, len(long_answer) + 1000, 1000):           # as a reply grows
        streamed.set_text(long_answer[:end])
    assert streamed.body.text() == long_answer and not streamed.whole_button.isVisible()

    conv = Conversation.new()
    conv.messages += [Message("user", "write a lot"), Message("assistant", long_answer, {"model": "m"}),
                      Message("user", "short"), Message("assistant", "x" * LONG_CHARS, {"model": "m"})]
    app.window.chat.open_conversation(conv)
    widgets = app.window.chat._message_widgets()
    assert [w.whole_button.isVisibleTo(w) for w in widgets] == [False, True, False, False]   # over LONG_CHARS only
    assert [w.text() for w in widgets] == [m.content for m in conv.messages]
    assert app.window.chat.last_reply_text() == "x" * LONG_CHARS


def test_a_question_left_unanswered_is_kept_with_its_reason_after_a_restart(make_app, demo_engine, qtbot):
    """What the user wrote outlives a restart even when no answer came (the document is over the
    context): the question was saved only with an answer before."""
    app = make_app().start()
    chat = app.window.chat
    text = document(40_000)
    chat.prompt.setPlainText(text)
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=60000)
    [you] = chat._message_widgets()
    reason = you.problem.text()
    assert "does not fit the context" in reason and you.retry_button.isVisibleTo(you)
    conv_id = chat.conversation.id
    app.close()

    again = make_app().start()
    chat = again.window.chat
    qtbot.waitUntil(lambda: chat.conversation is not None and chat.conversation.id == conv_id, timeout=10000)
    [you] = chat._message_widgets()
    assert you.text() == text and you.problem.text() == reason and you.retry_button.isVisibleTo(you)
    chat.sampling.max_tokens.setValue(4)
    you._start_edit()                                     # answered once it fits: the reason goes
    you._editor.setPlainText("Hello")
    you._submit_edit()
    qtbot.waitUntil(lambda: not chat.generating, timeout=60000)
    assert chat.last_reply_text() and "unanswered" not in chat.conversation.messages[0].info
    assert not chat._message_widgets()[0].problem.isVisibleTo(chat)
