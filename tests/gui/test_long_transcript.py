"""A chat of hundreds of messages: the newest page is shown and earlier pages come on request, so
opening it and streaming into it cost what a short chat costs; editing, the context-window line and
the end of an answer work the same with the earlier messages not shown."""
from __future__ import annotations

import pytest
from fixtures.long_demo import long_demo_model  # noqa: F401  (pytest fixture)
from PySide6.QtCore import Qt

from desktop_app.conversation_store import Conversation, Message
from desktop_app.widgets.transcript import KEEP_AT_MOST, PAGE

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]
TIMEOUT = 60000


def long_chat(n_turns: int) -> Conversation:
    conv = Conversation.new()
    for i in range(n_turns):
        conv.messages += [Message("user", f"question {i}"), Message("assistant", f"answer {i}", {"model": "m"})]
    return conv


def shown(chat) -> list[str]:
    return [w.text() for w in chat._message_widgets()]


def test_only_the_newest_page_is_shown_and_earlier_pages_come_on_request(make_app, qtbot):
    app = make_app().start()
    chat = app.window.chat
    conv = long_chat(150)                                           # 300 messages
    chat.open_conversation(conv)
    button = chat.scroll.earlier_button
    assert shown(chat) == [m.content for m in conv.messages[-PAGE:]]
    assert button.isVisible() and f"{300 - PAGE} more" in button.text()
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert shown(chat) == [m.content for m in conv.messages[-2 * PAGE:]] and f"{300 - 2 * PAGE} more" in button.text()
    while button.isVisible():
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert shown(chat) == [m.content for m in conv.messages]
    # The context-window line finds its message among those shown, and hides while it is not shown.
    conv.messages[-1].info["left_out"] = 300 - PAGE + 10
    chat.open_conversation(conv)
    widgets = chat._message_widgets()
    assert chat.window_marker.isVisible()
    assert chat.transcript_layout.indexOf(chat.window_marker) == chat.transcript_layout.indexOf(widgets[10]) - 1
    conv.messages[-1].info["left_out"] = 100
    chat.open_conversation(conv)
    assert not chat.window_marker.isVisible()


@pytest.mark.parametrize("n_ctx", [1024, 2048])                  # the model sees fewer / more than is shown
def test_edit_and_answers_with_earlier_messages_not_shown(make_app, qtbot, n_ctx, long_demo_model):
    app = make_app()
    app.state.settings.set("engine/n_ctx", n_ctx)
    app.state.settings.set_last_model(str(long_demo_model), "llama.cpp")    # the demo model's own context is 512
    app.start()
    chat = app.window.chat
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(8)
    conv = long_chat(60)                                            # 120 messages, 80 not shown
    app.state.conversations.add(conv)
    chat.open_conversation(conv)
    first = chat._message_widgets()[0]
    assert first.text() == f"question {60 - PAGE // 2}" and chat.scroll.hidden == 120 - PAGE
    hidden = chat.scroll.hidden
    first.edit_submitted.emit(first, "edited")                      # edit-and-resend of the first one shown
    box = chat.edit_box                                             # 39 later messages: asked first
    replace = next(b for b in box.buttons() if b.text() == f"Replace {120 - hidden - 1} messages")
    qtbot.mouseClick(replace, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert [m.content for m in conv.messages[:hidden + 1]] == [m.content for m in long_chat(60).messages[:hidden]] + [
        "edited"]
    assert len(conv.messages) == hidden + 2 and conv.messages[-1].role == "assistant"
    assert shown(chat) == ["edited", conv.messages[-1].content]
    # Grown past two pages while the view follows the end: the oldest widgets go back behind the button.
    while chat.scroll.earlier_button.isVisible():
        chat.scroll.show_earlier()
    assert len(shown(chat)) == hidden + 2
    lines = outside = 0
    for i in range(16):
        chat.prompt.setPlainText(f"more {i}")
        chat.send()
        qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
        left_out = conv.messages[-1].info["left_out"]
        widgets = chat._message_widgets()
        at = left_out - chat.scroll.hidden
        if 0 <= at < len(widgets):                                 # also right after the oldest were given back
            lines += 1
            assert chat.window_marker.isVisible()
            assert chat.transcript_layout.indexOf(chat.window_marker) == chat.transcript_layout.indexOf(widgets[at]) - 1
        else:                                                      # its message is not shown: no line
            outside += 1
            assert not chat.window_marker.isVisible(), i
    assert (lines if n_ctx == 1024 else outside) >= 4
    assert len(conv.messages) == hidden + 34
    assert len(chat._message_widgets()) <= KEEP_AT_MOST
    assert chat.scroll.hidden + len(chat._message_widgets()) == len(conv.messages)
    assert shown(chat)[-2] == "more 15" and chat.scroll.earlier_button.isVisible()
