"""Search in the chat's sidebar: the list shows the conversations whose title, system prompt, messages
or answers' mix hold every word typed (any case); opening, deleting and starting a chat work on the rows
shown, a new chat clears a search that would hide it, and a search that finds nothing says so."""
from __future__ import annotations

import time

from PySide6.QtCore import Qt

from desktop_app.conversation_store import Conversation, ConversationStore, Message

TIMEOUT = 20000


def _saved(app_env) -> dict[str, Conversation]:
    store = ConversationStore(app_env / "data" / "conversations")
    chats = {
        "trip": ("Weekend trip", "", [("user", "Plan two days on the coast"),
                                      ("assistant", "Visit the old Lighthouse and its keeper's museum.",
                                       {"model": "Demo model", "mix": "pirate ×0.8"})]),
        "cook": ("Dinner ideas", "You are a chef who loves fennel.", [("user", "Something quick?")]),
        "code": ("Rust question", "", [("user", "Why does the borrow checker reject this?"),
                                       ("assistant", "Because the lighthouse keeper holds a reference.")]),
    }
    out = {}
    for key, (title, system, messages) in chats.items():
        conv = Conversation.new(system)
        conv.title = title
        conv.messages = [Message(role, text, *info) for role, text, *info in messages]
        store.save(conv)
        time.sleep(0.01)                                  # each one newer than the last
        out[key] = conv
    return out


def shown(chat) -> list[str]:
    view = chat.sidebar.view
    return [view.model().index(r, 0).data() for r in range(view.model().rowCount())]


def search(qtbot, chat, text: str) -> None:
    chat.sidebar.search.clear()
    qtbot.keyClicks(chat.sidebar.search, text)
    qtbot.waitUntil(lambda: not chat.sidebar._search_timer.isActive(), timeout=TIMEOUT)   # typing paused


def test_search_finds_words_in_titles_messages_and_system_prompts(make_app, app_env, qtbot):
    saved = _saved(app_env)
    app = make_app().start(wait_model=False)
    chat = app.window.chat
    qtbot.waitUntil(lambda: app.state.conversations.rowCount() == 3, timeout=TIMEOUT)
    assert shown(chat) == ["Rust question", "Dinner ideas", "Weekend trip"]

    app.window.tabs.setCurrentIndex(3)                # Ctrl+F, from another tab: the chat's search box
    app.window.activateWindow()
    qtbot.waitUntil(app.window.isActiveWindow, timeout=TIMEOUT)
    qtbot.keyClick(app.window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert app.window.tabs.currentWidget() is chat and chat.sidebar.search.hasFocus()
    search(qtbot, chat, "LIGHTHOUSE keeper")          # every word, any case, in the messages
    assert shown(chat) == ["Rust question", "Weekend trip"]
    search(qtbot, chat, "fennel")                     # the system prompt
    assert shown(chat) == ["Dinner ideas"]
    qtbot.mouseClick(chat.sidebar.view.viewport(), Qt.MouseButton.LeftButton,
                     pos=chat.sidebar.view.visualRect(chat.sidebar.view.model().index(0, 0)).center())
    assert chat.conversation.id == saved["cook"].id
    # A search that hides the open conversation leaves it open; the list shows it again when it can.
    search(qtbot, chat, "pirate")                     # the mix an answer was written with
    assert shown(chat) == ["Weekend trip"]
    search(qtbot, chat, "trip museum")                # title and message together
    assert shown(chat) == ["Weekend trip"] and not chat.sidebar.no_match.isVisible()
    assert chat.conversation.id == saved["cook"].id and not chat.sidebar.view.currentIndex().isValid()
    search(qtbot, chat, "submarine")
    assert shown(chat) == [] and chat.sidebar.no_match.isVisible()
    assert chat.conversation.id == saved["cook"].id
    chat.sidebar.search.clear()
    qtbot.waitUntil(lambda: len(shown(chat)) == 3, timeout=TIMEOUT)
    assert not chat.sidebar.no_match.isVisible() and chat.conversation.id == saved["cook"].id
    assert chat.sidebar.view.currentIndex().data() == "Dinner ideas"


def test_delete_and_new_chat_act_on_the_rows_the_search_shows(make_app, app_env, qtbot):
    saved = _saved(app_env)
    app = make_app().start(wait_model=False)
    chat, model = app.window.chat, app.state.conversations
    qtbot.waitUntil(lambda: model.rowCount() == 3, timeout=TIMEOUT)
    search(qtbot, chat, "keeper")
    view = chat.sidebar.view
    view.setCurrentIndex(view.model().index(1, 0))    # "Weekend trip": row 2 of the whole list
    assert chat.conversation.id == saved["trip"].id
    app.window.activateWindow()                       # a shortcut acts in the active window only
    qtbot.waitUntil(app.window.isActiveWindow, timeout=TIMEOUT)
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Delete)           # asks first …
    box = chat.sidebar.delete_box
    assert "Delete “Weekend trip” and its 2 messages from this computer?" in box.text()
    qtbot.mouseClick(box.button(box.StandardButton.Cancel), Qt.MouseButton.LeftButton)
    assert model.rowCount() == 3 and (app_env / "data" / "conversations" / f"{saved['trip'].id}.json").exists()
    qtbot.keyClick(view, Qt.Key.Key_Delete)           # … then deletes the conversation shown, not row 1 of all
    delete = next(b for b in chat.sidebar.delete_box.buttons() if b.text() == "Delete")
    qtbot.mouseClick(delete, Qt.MouseButton.LeftButton)
    assert {model.conversation(r).id for r in range(model.rowCount())} == {saved["cook"].id, saved["code"].id}
    assert not (app_env / "data" / "conversations" / f"{saved['trip'].id}.json").exists()
    assert shown(chat) == ["Rust question"] and chat.conversation.id == saved["code"].id

    chat.new_chat()                                   # the new chat would be hidden: the search goes
    assert chat.sidebar.search.text() == "" and shown(chat) == ["New chat", "Rust question", "Dinner ideas"]
    assert view.currentIndex().row() == 0 and chat.conversation.title == "New chat"
