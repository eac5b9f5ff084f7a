"""Renaming a conversation: F2 (or Rename in the list's menu) edits its title in place; the new title
is saved without moving the chat in the list, the search finds it, an empty title keeps the old one,
and a new chat named before its first message keeps its name."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QApplication, QLineEdit

from desktop_app.conversation_store import ConversationStore
from tests.gui.test_conversation_search import _saved, search, shown

TIMEOUT = 20000


def rename(qtbot, chat, row: int, text: str) -> None:
    view = chat.sidebar.view
    chat.window().activateWindow()                     # keys go to the active window's focus
    qtbot.waitUntil(chat.window().isActiveWindow, timeout=TIMEOUT)
    view.setCurrentIndex(view.model().index(row, 0))
    view.setFocus()
    qtbot.waitUntil(view.hasFocus, timeout=TIMEOUT)
    qtbot.keyClick(view, Qt.Key.Key_F2)
    editor = QApplication.focusWidget()
    assert isinstance(editor, QLineEdit) and editor.text() == view.model().index(row, 0).data()
    editor.selectAll()
    qtbot.keyClicks(editor, text) if text else qtbot.keyClick(editor, Qt.Key.Key_Delete)
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: view.state() != QAbstractItemView.State.EditingState, timeout=TIMEOUT)  # queued


def test_f2_renames_in_place_without_moving_the_chat(make_app, app_env, qtbot):
    saved = _saved(app_env)
    app = make_app().start(wait_model=False)
    chat = app.window.chat
    qtbot.waitUntil(lambda: app.state.conversations.rowCount() == 3, timeout=TIMEOUT)
    rename(qtbot, chat, 2, "Holiday plans")
    assert shown(chat) == ["Rust question", "Dinner ideas", "Holiday plans"]        # same place
    on_disk = ConversationStore(app_env / "data" / "conversations").read(
        app_env / "data" / "conversations" / f"{saved['trip'].id}.json")
    assert on_disk.title == "Holiday plans" and on_disk.updated == saved["trip"].updated
    search(qtbot, chat, "holiday")
    assert shown(chat) == ["Holiday plans"]
    chat.sidebar.search.clear()
    qtbot.waitUntil(lambda: len(shown(chat)) == 3, timeout=TIMEOUT)
    rename(qtbot, chat, 0, "")                                                        # nothing typed
    assert shown(chat)[0] == "Rust question"
    rename(qtbot, chat, 0, "word " * 100)                                             # pasted, too long
    assert shown(chat)[0] == ("word " * 40).strip()


def test_a_chat_named_before_its_first_message_keeps_its_name(make_app, qtbot):
    app = make_app().start()
    chat = app.window.chat
    chat.new_chat()
    rename(qtbot, chat, 0, "My experiments")
    chat.sampling.max_tokens.setValue(4)
    chat.prompt.setPlainText("What is the capital of France?")
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert chat.conversation.title == "My experiments" and shown(chat)[0] == "My experiments"
    chat.new_chat()                                                  # an unnamed one still takes its question
    chat.prompt.setPlainText("What color is a banana?")
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert chat.conversation.title == "What color is a banana?"
