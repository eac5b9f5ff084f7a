"""A data folder that cannot be written (a full disk, a read-only folder) never breaks the chat: the
answer stays on screen and the next message can be sent, the user is told once which file and why,
and the conversation is written as soon as it can be (the next answer, or at quit). The failures
here are real ones from the operating system: the conversations folder is a plain file, so no file
can be created in it."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

TIMEOUT = 60000


def ask(qtbot, chat, text: str) -> None:
    chat.prompt.setPlainText(text)
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)


def block(folder):
    """Make `folder` unusable for writes: a plain file where the folder should be."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    folder.write_text("not a folder")


def unblock(folder):
    folder.unlink()


def test_a_conversation_that_cannot_be_saved_keeps_the_chat_working(make_app, demo_engine, app_env, qtbot):
    app = make_app().start()
    chat, state = app.window.chat, app.state
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(6)
    folder = app_env / "data" / "conversations"
    block(folder)

    ask(qtbot, chat, "hello")
    assert chat.last_reply_text()                                  # the answer is there
    assert chat.send_button.isEnabled()                            # and the next question can go
    [(context, message)] = state.errors.history
    assert context == "Conversations" and "could not be saved" in message and str(folder) in message
    assert "Something went wrong" not in message

    ask(qtbot, chat, "again")                                      # still failing: not told twice
    assert len(state.errors.history) == 1
    [conv] = state.conversations.unsaved()
    assert [m.content for m in conv.messages if m.role == "user"] == ["hello", "again"]

    unblock(folder)                                                # space again: the next answer saves
    ask(qtbot, chat, "third")
    assert state.conversations.unsaved() == []
    saved = json.loads((folder / f"{conv.id}.json").read_text())
    assert [m["content"] for m in saved["messages"] if m["role"] == "user"] == ["hello", "again", "third"]
    assert len(state.errors.history) == 1


def test_unsaved_conversations_are_written_at_quit(make_app, demo_engine, app_env, qtbot):
    app = make_app().start()
    chat = app.window.chat
    chat.sampling.max_tokens.setValue(4)
    folder = app_env / "data" / "conversations"
    block(folder)
    ask(qtbot, chat, "keep me")
    [conv] = app.state.conversations.unsaved()
    unblock(folder)
    app.close()
    assert json.loads((folder / f"{conv.id}.json").read_text())["messages"][0]["content"] == "keep me"


def test_a_conversation_that_cannot_be_deleted_stays_listed(make_app, demo_engine, app_env, qtbot):
    app = make_app().start()
    chat, model = app.window.chat, app.state.conversations
    chat.sampling.max_tokens.setValue(4)
    ask(qtbot, chat, "delete me")
    conv = chat.conversation
    path = app_env / "data" / "conversations" / f"{conv.id}.json"
    path.unlink()
    path.mkdir()                                        # unlink() of a folder fails (EISDIR/EPERM)
    (path / "x").write_text("")
    chat.delete_conversation(model.row_of(conv.id))
    assert model.row_of(conv.id) >= 0 and path.is_dir()
    [(context, message)] = app.state.errors.history
    assert context == "Conversations" and "could not be deleted" in message


def test_a_preset_that_cannot_be_saved_is_reported(make_app, demo_engine, app_env, qtbot):
    app = make_app().start()
    state = app.state
    presets = state.presets.path
    presets.parent.mkdir(parents=True, exist_ok=True)
    presets.mkdir()                                     # the file's place is taken: os.replace fails
    assert state.save_preset("mine") is False
    [(context, message)] = state.errors.history
    assert context == "Presets" and "“mine” could not be saved" in message and str(presets) in message
    assert "mine" not in state.presets.names()


def test_quitting_while_a_conversation_still_cannot_be_saved_asks_first(make_app, demo_engine, app_env, qtbot):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    app = make_app().start()
    chat = app.window.chat
    chat.sampling.max_tokens.setValue(4)
    block(app_env / "data" / "conversations")
    ask(qtbot, chat, "keep me")
    app.state.errors.show_dialogs = True             # the question is asked where dialogs are shown
    asked = []

    def answer(button):
        box = QApplication.activeModalWidget()
        asked.append(box.text())
        box.button(button).click()

    QTimer.singleShot(50, lambda: answer(QMessageBox.StandardButton.Cancel))
    assert app.window.close() is False and app.window.isVisible()      # stays: the user frees space
    assert "1 conversation could not be saved" in asked[0] and "conversations" in asked[0]
    QTimer.singleShot(50, lambda: answer(QMessageBox.StandardButton.Discard))
    assert app.window.close() is True
    assert len(asked) == 2
    app.closed = True


SCRIPT = """
import json, sys
from PySide6.QtCore import QTimer
from adapters_backend.paths import data_dir
from desktop_app.app import run
from desktop_app.settings import AppSettings

AppSettings().set("paths/data_dir", sys.argv[1])

def started(app, window):
    def report():
        print(json.dumps({"errors": window.state.errors.history, "data": str(data_dir()),
                          "visible": window.isVisible()}), flush=True)
        app.quit()
    QTimer.singleShot(1500, report)

sys.exit(run([], single=False, on_started=started))
"""


def test_a_chosen_data_folder_that_cannot_be_used_does_not_stop_the_app(tmp_path):
    """A data folder chosen in Settings on a drive that is not there: the app opens on its usual folder
    and says why, instead of not opening at all (it stopped at start with a traceback)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    in_the_way = tmp_path / "not-a-drive"
    in_the_way.write_text("")                          # a file where the folder's parent should be
    env = {k: v for k, v in os.environ.items() if not k.startswith("LORADECK_")}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "xdg-data"),
               XDG_CACHE_HOME=str(tmp_path / "xdg-cache"), XDG_STATE_HOME=str(tmp_path / "xdg-state"),
               LORADECK_SETTINGS_DIR=str(tmp_path / "settings"), QT_QPA_PLATFORM="offscreen",
               HF_HUB_OFFLINE="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(in_the_way / "loradeck")], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["visible"] and seen["data"] == str(tmp_path / "xdg-data" / "loradeck")
    [(context, message)] = [e for e in seen["errors"] if e[0] == "Data folder"]
    assert f"cannot write {in_the_way / 'loradeck'}" in message and "usual data folder" in message
