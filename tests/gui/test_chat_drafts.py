"""What is typed but not sent belongs to its chat: opening another chat carried a half-written message
into it (where Enter sent it there), and quitting or a crash lost it, and an edited system prompt
with it until the next answer. Now each chat keeps its draft, saved a moment after typing stops
without moving the chat in the list, and found again after a restart."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]
TIMEOUT = 30000


def ask(qtbot, chat, text):
    chat.prompt.setPlainText(text)
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)


def two_chats(app, qtbot):
    chat = app.window.chat
    chat.sampling.max_tokens.setValue(4)
    ask(qtbot, chat, "What is the capital of France?")
    first = chat.conversation
    chat.new_chat()
    ask(qtbot, chat, "What color is a banana?")
    return chat, first, chat.conversation


def on_disk(app_env, conv):
    return json.loads((app_env / "data" / "conversations" / f"{conv.id}.json").read_text())


def test_a_draft_stays_with_its_chat(make_app, demo_engine, qtbot):
    app = make_app().start()
    chat, a, b = two_chats(app, qtbot)
    chat.open_conversation(a)
    qtbot.keyClicks(chat.prompt, "half a thought")
    chat.open_conversation(b)
    assert chat.prompt.toPlainText() == ""                  # not carried into the other chat
    qtbot.keyClicks(chat.prompt, "and another")
    chat.open_conversation(a)
    assert chat.prompt.toPlainText() == "half a thought"
    chat.open_conversation(b)
    assert chat.prompt.toPlainText() == "and another"
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert b.messages[-2].content == "and another" and b.draft == "" and chat.prompt.toPlainText() == ""
    chat.open_conversation(a)
    assert chat.prompt.toPlainText() == "half a thought"


def test_a_draft_and_a_system_prompt_survive_a_restart(make_app, demo_engine, app_env, qtbot, monkeypatch):
    from desktop_app.widgets import draft_keeper
    monkeypatch.setattr(draft_keeper, "DRAFT_SAVE_MS", 50)
    app = make_app().start()
    chat, a, b = two_chats(app, qtbot)
    before = on_disk(app_env, a)
    chat.open_conversation(a)
    qtbot.keyClicks(chat.prompt, "a long question, half written")
    chat.system_edit.setPlainText("Answer like a sailor.")
    # Saved once typing pauses, as a crash would find it: the chat is not moved, nor marked changed.
    qtbot.waitUntil(lambda: on_disk(app_env, a)["draft"] == "a long question, half written", timeout=TIMEOUT)
    saved = on_disk(app_env, a)
    assert saved["system_prompt"] == "Answer like a sailor." and saved["updated"] == before["updated"]
    assert saved["messages"] == before["messages"]
    assert [app.state.conversations.conversation(i) for i in range(2)] == [b, a]
    app.close()

    again = make_app().start()
    model, chat = again.state.conversations, again.window.chat
    qtbot.waitUntil(lambda: model.rowCount() == 2, timeout=TIMEOUT)
    chat.open_conversation(model.conversation(model.row_of(a.id)))
    assert chat.prompt.toPlainText() == "a long question, half written"
    assert chat.system_edit.toPlainText() == "Answer like a sailor."


def test_text_typed_with_no_chat_open_goes_with_the_chat_opened(make_app, demo_engine, qtbot):
    app = make_app().start()
    chat, a, b = two_chats(app, qtbot)
    chat.open_conversation(a)
    qtbot.keyClicks(chat.prompt, "mine")
    chat.open_conversation(b)
    chat.delete_conversation(app.state.conversations.row_of(b.id))   # opens the first chat left: a
    assert chat.conversation is a and chat.prompt.toPlainText() == "mine"
    chat.open_conversation(None)
    assert chat.prompt.toPlainText() == ""
    qtbot.keyClicks(chat.prompt, "typed meanwhile")
    chat.open_conversation(a)                                 # its own draft first, then what was typed
    assert chat.prompt.toPlainText() == "mine\ntyped meanwhile"


def test_quitting_while_an_answer_is_written_keeps_it(make_app, demo_engine, app_env, qtbot):
    from tests.gui.test_switch_while_answering import start_long_answer
    app = make_app().start()
    conv = start_long_answer(app, qtbot)
    app.close()
    last = on_disk(app_env, conv)["messages"][-1]
    assert last["role"] == "assistant" and len(last["content"]) > 20
    assert last["info"]["finish"] in ("interrupted", "cancelled")
