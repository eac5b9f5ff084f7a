"""Saved conversations are read a slice at a time between the window's events (a file each: about
1 s for 5,000, a frozen window before), and what the user does before they are in is kept."""
from __future__ import annotations

from PySide6.QtCore import QTimer

from desktop_app.conversation_store import Conversation, ConversationStore, Message

TIMEOUT = 20000


def _saved(app_env, n: int) -> list[Conversation]:
    store = ConversationStore(app_env / "data" / "conversations")
    convs = []
    for i in range(n):
        conv = Conversation.new()
        conv.title = f"chat {i}"
        conv.messages = [Message("user", f"question {i} " * 40), Message("assistant", f"answer {i} " * 200)]
        store.save(conv)                                      # each one newer than the last
        convs.append(conv)
    return convs


def test_the_window_handles_events_while_saved_conversations_are_read_and_the_newest_opens(
        make_app, app_env, qtbot):
    _saved(app_env, 1500)
    app = make_app()
    model, resets, seen = app.state.conversations, [], []
    model.modelReset.connect(lambda: resets.append(model.rowCount()))
    model.start_loading()
    QTimer.singleShot(0, lambda: seen.append(model.rowCount()))     # an event posted after the start
    qtbot.waitUntil(lambda: model.rowCount() == 1500, timeout=TIMEOUT)
    assert seen == [0]                       # handled before the reading ended (it ran in one go before)
    assert resets == [1500]
    app.start(wait_model=False)              # the app's own start, as the user gets it
    qtbot.waitUntil(lambda: app.window.chat.conversation is not None, timeout=TIMEOUT)
    assert app.window.chat.conversation.title == "chat 1499"
    assert app.window.chat.conversation.messages[-1].content.startswith("answer 1499")


def test_what_the_user_does_before_the_saved_conversations_are_in_is_kept(make_app, app_env, qtbot):
    saved = _saved(app_env, 1500)
    app = make_app()
    model, chat = app.state.conversations, app.window.chat
    chat.new_chat()                                   # started and saved before the files are read …
    early = chat.conversation
    early.id = "000000000000"                         # its file is read first, long before the last
    model.save(early)
    app.start(wait_model=False)
    qtbot.waitUntil(lambda: any(c.id == early.id for c in model._read), timeout=TIMEOUT)  # … read, then deleted
    assert model.rowCount() == 1
    chat.delete_conversation(model.row_of(early.id))
    chat.new_chat()                                   # the one open when they arrive
    kept = chat.conversation
    qtbot.waitUntil(lambda: model.rowCount() == 1501, timeout=TIMEOUT)
    ids = [model.conversation(row).id for row in range(model.rowCount())]
    assert ids[0] == kept.id and sorted(ids[1:]) == sorted(c.id for c in saved)
    assert not (app_env / "data" / "conversations" / f"{early.id}.json").exists()
    qtbot.wait(50)
    assert chat.conversation is kept
    assert chat.sidebar.view.currentIndex().row() == 0
