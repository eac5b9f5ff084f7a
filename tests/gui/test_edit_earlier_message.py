"""Editing a message that later messages follow: sending it replaced all of them without a word (a long
chat lost everything after the edit). Now the user is asked: replace them, send the edit in a copy of
the chat that ends at that message (the original stays whole, on disk too), or cancel."""
from __future__ import annotations

import json

from PySide6.QtCore import Qt

from desktop_app.conversation_store import Conversation, ConversationStore, Message

TIMEOUT = 60000


def _chat(app_env) -> Conversation:
    conv = Conversation.new("You are terse.")
    conv.title = "Capitals"
    for q, a in (("What is the capital of France?", "Paris."), ("And of Spain?", "Madrid."),
                 ("And of Italy?", "Rome.")):
        conv.messages += [Message("user", q), Message("assistant", a, {"model": "Demo model"})]
    ConversationStore(app_env / "data" / "conversations").save(conv)
    return conv


def button(box, text: str):
    return next(b for b in box.buttons() if b.text() == text)


def test_cancel_keeps_everything_and_a_copy_keeps_the_original(make_app, app_env, qtbot):
    saved = _chat(app_env)
    on_disk = (app_env / "data" / "conversations" / f"{saved.id}.json").read_text()
    app = make_app().start()
    chat = app.window.chat
    qtbot.waitUntil(lambda: chat.conversation is not None and chat.conversation.id == saved.id, timeout=TIMEOUT)
    chat.sampling.max_tokens.setValue(6)
    spain = [w for w in chat._message_widgets() if w.role == "user"][1]

    spain.edit_submitted.emit(spain, "And of Portugal?")
    box = chat.edit_box
    assert "3 messages follow the one you edited" in box.text() and box.defaultButton().text() == "Send in a copy"
    qtbot.mouseClick(box.button(box.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert not chat.generating and len(chat.conversation.messages) == 6

    spain.edit_submitted.emit(spain, "And of Portugal?")
    qtbot.mouseClick(button(chat.edit_box, "Send in a copy"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    copy = chat.conversation
    assert copy.id != saved.id and copy.title == "Capitals (edited)" and copy.system_prompt == "You are terse."
    assert [(m.role, m.content) for m in copy.messages[:3]] == [
        ("user", "What is the capital of France?"), ("assistant", "Paris."), ("user", "And of Portugal?")]
    assert len(copy.messages) == 4 and copy.messages[3].role == "assistant" and copy.messages[3].content
    model = app.state.conversations
    assert [model.conversation(r).title for r in range(model.rowCount())] == ["Capitals (edited)", "Capitals"]
    original = model.conversation(1)
    assert [m.content for m in original.messages] == [m.content for m in saved.messages]
    assert (app_env / "data" / "conversations" / f"{saved.id}.json").read_text() == on_disk
    assert json.loads((app_env / "data" / "conversations" / f"{copy.id}.json").read_text())["title"] == \
        "Capitals (edited)"


def test_editing_the_last_question_replaces_its_answer_without_asking(make_app, app_env, qtbot):
    saved = _chat(app_env)
    app = make_app().start()
    chat = app.window.chat
    qtbot.waitUntil(lambda: chat.conversation is not None and chat.conversation.id == saved.id, timeout=TIMEOUT)
    chat.sampling.max_tokens.setValue(6)
    italy = [w for w in chat._message_widgets() if w.role == "user"][-1]
    italy.edit_submitted.emit(italy, "And of Greece?")
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert getattr(chat, "edit_box", None) is None
    assert [m.content for m in chat.conversation.messages][:5] == [m.content for m in saved.messages[:4]] + [
        "And of Greece?"]
