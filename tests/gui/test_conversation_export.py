"""Chat → Export chat…: the open conversation (or one from the list's menu) written as Markdown, with
each answer's model and mix and the reason a question went unanswered; the folder is remembered; a
file that cannot be written is reported naming it, and an empty chat is not exported."""
from __future__ import annotations

import time

import pytest
from PySide6.QtWidgets import QFileDialog

from desktop_app.conversation_export import file_name, to_markdown
from desktop_app.conversation_store import Conversation, ConversationStore, Message

TIMEOUT = 20000


def _conversation() -> Conversation:
    conv = Conversation.new("You are terse.")
    conv.title = "Capitals"
    conv.messages = [
        Message("user", "What is the capital of France?"),
        Message("assistant", "Paris.\n", {"model": "Demo model", "mix": "shout ×1 · pirate ×0.5", "tokens": 3}),
        Message("user", "And of Spain?", {"unanswered": "the model stopped"}),
    ]
    return conv


def test_markdown_names_the_model_and_mix_of_each_answer():
    exported = time.mktime((2026, 12, 6, 9, 30, 0, 0, 0, -1))
    assert to_markdown(_conversation(), exported) == (
        "# Capitals\n\n_Exported from LoRA Deck on 2026-12-06 09:30_\n\n"
        "## System prompt\n\nYou are terse.\n\n"
        "## You\n\nWhat is the capital of France?\n\n"
        "## Assistant — Demo model · shout ×1 · pirate ×0.5\n\nParis.\n\n"
        "## You\n\nAnd of Spain?\n\n> Not answered: the model stopped\n")


def test_an_answer_cut_short_says_so():
    conv = Conversation.new()
    conv.messages = [Message("user", "Q"), Message("assistant", "A long", {"finish": "length"}),
                     Message("user", "Q2"), Message("assistant", "Some", {"finish": "cancelled"}),
                     Message("user", "Q3"), Message("assistant", "Half", {"finish": "interrupted"}),
                     Message("user", "Q4"), Message("assistant", "Done.", {"finish": "stop"})]
    md = to_markdown(conv, 0)
    assert "A long\n\n> Cut at the token limit\n" in md and "Some\n\n> Stopped\n" in md
    assert "Half\n\n> Interrupted: LoRA Deck ended while writing it\n" in md
    assert md.endswith("Done.\n")


def test_a_thinking_models_reasoning_is_exported_folded():
    conv = Conversation.new()
    conv.title = "Capitals"
    conv.messages = [Message("user", "Capital of France?"),
                     Message("assistant", "<think>\nThey ask for Paris.\n</think>\n\nParis.", {"model": "Qwen3"}),
                     Message("user", "<think>typed by me</think>")]
    md = to_markdown(conv, 0)
    assert ("## Assistant — Qwen3\n\n<details><summary>Reasoning</summary>\n\nThey ask for Paris.\n\n"
            "</details>\n\nParis.\n") in md
    assert "## You\n\n<think>typed by me</think>\n" in md                # a question stays as written


@pytest.mark.parametrize(("title", "name"), [("Capitals", "Capitals.md"), ('a/b:c*?"<>|\x07.', "a b c.md"),
                                             ("...", "chat.md"), ("x" * 200, "x" * 80 + ".md"),
                                             ("con", "chat con.md"), ("COM1 ", "chat COM1.md")])
def test_the_file_name_is_the_title_without_what_file_systems_refuse(title, name):
    conv = Conversation.new()
    conv.title = title
    assert file_name(conv) == name


def test_export_from_the_chat_menu_and_the_list(make_app, app_env, qtbot, tmp_path, monkeypatch):
    conv = _conversation()
    ConversationStore(app_env / "data" / "conversations").save(conv)
    app = make_app().start(wait_model=False)
    chat = app.window.chat
    qtbot.waitUntil(lambda: chat.conversation is not None, timeout=TIMEOUT)
    asked = []

    def save_as(parent, caption, start, filters):
        asked.append(start)
        return str(target), filters.split(";;")[0]

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_as))
    target = tmp_path / "out" / "capitals.md"
    target.parent.mkdir()
    menu = next(a.menu() for a in app.window.menuBar().actions() if a.text() == "&Chat")
    export = next(a for a in menu.actions() if a.text() == "&Export chat…")
    assert export.shortcut().toString() == "Ctrl+Shift+E"
    export.trigger()
    text = target.read_text(encoding="utf-8")
    assert text.splitlines()[2].startswith("_Exported from LoRA Deck on ")
    assert text.splitlines()[3:] == to_markdown(conv).splitlines()[3:]
    assert asked[0].endswith("/Capitals.md")

    # The list's menu exports the conversation clicked; the dialog opens where the last export went.
    target = tmp_path / "out" / "again.md"
    chat.sidebar.export_requested.emit(0)
    assert asked[-1] == str(tmp_path / "out" / "Capitals.md") and target.read_text(encoding="utf-8") == text


def test_a_file_that_cannot_be_written_is_reported_and_an_empty_chat_is_not_exported(
        make_app, qtbot, tmp_path, monkeypatch):
    app = make_app().start(wait_model=False)
    chat, state = app.window.chat, app.state
    state.errors.show_dialogs = False
    chat.new_chat()
    messages = []
    chat.status_message.connect(messages.append)

    def no_dialog(*_a):
        raise AssertionError("nothing to export: no dialog")

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(no_dialog))
    chat.export_open()
    assert messages == ["Nothing to export: the conversation has no messages yet"]

    chat.conversation.messages.append(Message("user", "hello"))
    exports = tmp_path / "exports"
    exports.mkdir()
    blocker = exports / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "chat.md"                    # a folder that is a file: the system refuses it
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *_a: (str(target), "")))
    chat.export_open()
    assert state.errors.history[-1][0] == "Export chat" and str(target) in state.errors.history[-1][1]
    assert blocker.read_text() == "not a folder" and sorted(p.name for p in exports.iterdir()) == ["a-file"]
