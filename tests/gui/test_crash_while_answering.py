"""LoRA Deck killed while an answer is written (a crash, the OOM killer, a power cut) loses neither the
question nor the answer so far: the conversation was saved only when its answer ended. Now it is
saved when the question is sent and every few seconds while the answer is written; after a restart
the answer is there, marked interrupted, and Continue writes it further. The app is killed for real
(SIGKILL, in a process of its own)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from desktop_app.conversation_store import CLOSED_UNANSWERED, INTERRUPTED, Conversation, Message
from desktop_app.widgets.chat_reply import info_text

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]
TIMEOUT = 60000
REPO = Path(__file__).resolve().parents[2]

# The app as `loradeck` starts it, on the demo model; after a first short answer (LoRA Deck does not
# load again at start a model it ended with before its first answer), it asks for a long one (the
# demo made to ramble: an adapter at −2, hot sampling) and kills itself right after Send ("asked") or
# right after the answer so far was saved with over 40 characters ("answering"; saved as often as
# possible here, as the demo's short context ends an answer in a fraction of a second).
SCRIPT = r"""
import os, signal, sys
from PySide6.QtCore import QTimer
from desktop_app.app import run
from desktop_app.conversation_store import ConversationStore
from desktop_app.widgets import answer_saver

answer_saver.SAVE_EVERY_S, answer_saver.SAVE_SHARE = 0.005, 1.0
FIRST = "What is the capital of France?"
when = sys.argv[1]

def started(app, window):
    chat, state = window.chat, window.state

    def first():
        if state.model is None:
            QTimer.singleShot(50, first)
            return
        chat.sampling.max_tokens.setValue(8)
        chat.prompt.setPlainText(FIRST)
        chat.send()
        ask()

    def ask():
        if chat.generating:
            QTimer.singleShot(20, ask)
            return
        chat.sampling.max_tokens.setValue(4000)
        chat.sampling.temperature.setValue(1.5)
        row = window.mixer.rows[0]
        row.switch.setChecked(True)
        row.spin.setValue(-2.0)
        chat.prompt.setPlainText("Tell me a very long story about everything.")
        chat.send()
        if when == "asked":
            os.kill(os.getpid(), signal.SIGKILL)
        ended()

    def ended():
        if chat.generating:
            QTimer.singleShot(20, ended)
            return
        print("the answer ended before it was saved", file=sys.stderr, flush=True)
        app.quit()

    first()

def save(store, conv, touch=True, answering=None):
    saving(store, conv, touch, answering)
    if when == "answering" and answering is not None and len(answering.content) > 40:
        print(answering.content, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

saving, ConversationStore.save = ConversationStore.save, save
sys.exit(run([], single=False, on_started=started))
"""


def run_and_kill(when: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", SCRIPT, when], env=env, capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == -signal.SIGKILL, out.stderr
    return out


def reopen(make_app, qtbot):
    app = make_app().start()
    model = app.state.conversations
    qtbot.waitUntil(lambda: model.rowCount() == 1, timeout=TIMEOUT)
    chat = app.window.chat
    chat.open_conversation(model.conversation(0))
    qtbot.waitUntil(lambda: chat._message_widgets()[-1].isVisible(), timeout=TIMEOUT)   # the transcript shows it
    return app


def test_the_answer_so_far_survives_a_kill_and_can_be_continued(make_app, demo_engine, qtbot):
    killed = run_and_kill("answering")
    app = reopen(make_app, qtbot)
    chat = app.window.chat
    _first, _its_answer, you, answer = chat._message_widgets()
    assert you.text() == "Tell me a very long story about everything." and not you.problem.isVisible()
    so_far = answer.message.content
    assert len(so_far) > 40 and killed.stdout == so_far + "\n"       # what was on disk when it died
    assert answer.message.info["finish"] == INTERRUPTED and answer.message.info["mix"]
    assert "interrupted" in answer.info.full_text()
    assert answer.continue_button.isVisible()

    chat.sampling.max_tokens.setValue(8)
    qtbot.mouseClick(answer.continue_button, Qt.MouseButton.LeftButton)
    assert chat.generating
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert chat._message_widgets()[2:] == [you, answer]
    msg = chat.conversation.messages[-1]
    assert msg.content.startswith(so_far) and len(msg.content) > len(so_far)
    assert msg.info["finish"] in ("length", "stop") and msg.info["finish"] != INTERRUPTED
    saved = app.state.conversations.store.load_all()[0]
    assert saved.messages[-1].content == msg.content and saved.messages[-1].info["finish"] == msg.info["finish"]


def test_a_question_sent_just_before_a_kill_is_kept_unanswered(make_app, demo_engine, qtbot):
    run_and_kill("asked")
    app = reopen(make_app, qtbot)
    chat = app.window.chat
    *_first, you = chat._message_widgets()
    assert [w.role for w in _first] == ["user", "assistant"]
    assert you.text() == "Tell me a very long story about everything."
    assert you.problem.isVisible() and CLOSED_UNANSWERED in you.problem.text()
    assert you.retry_button.isVisible()
    qtbot.mouseClick(you.retry_button, Qt.MouseButton.LeftButton)     # Retry answers it now
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert [m.role for m in chat.conversation.messages][-2:] == ["user", "assistant"]
    assert not you.problem.isVisible() and "unanswered" not in chat.conversation.messages[-2].info


def test_the_saved_image_of_an_answer_being_written():
    conv = Conversation.new()
    conv.messages = [Message("user", "Hi")]
    answer = Message("assistant", "", {"model": "Demo", "mix": "pirate +1.00", "seed": 3})

    empty = conv.to_json(answering=answer)               # before its first word: the question says so
    assert [m["role"] for m in empty["messages"]] == ["user"]
    assert empty["messages"][0]["info"] == {"unanswered": CLOSED_UNANSWERED}
    assert conv.messages[0].info == {}                   # the image only: the conversation is unchanged

    answer.content = "Ahoy"
    part = conv.to_json(answering=answer)
    assert part["messages"][-1] == {"role": "assistant", "content": "Ahoy",
                                    "info": {"model": "Demo", "mix": "pirate +1.00", "seed": 3,
                                             "finish": INTERRUPTED}}
    assert "unanswered" not in part["messages"][0]["info"] and len(conv.messages) == 1

    # Continuing an answer: it is the last message already; what its end would tell is dropped.
    going_on = Message("assistant", "Ahoy there", {"mix": "pirate +1.00", "tokens_before": 4, "tokens": 4,
                                                   "finish": "length", "error": "x"})
    conv.messages.append(going_on)
    d = conv.to_json(answering=going_on)
    assert len(d["messages"]) == 2
    assert d["messages"][-1]["info"] == {"mix": "pirate +1.00", "finish": INTERRUPTED}
    assert json.loads(json.dumps(d)) == d
    assert "interrupted" in info_text(d["messages"][-1]["info"])
    assert conv.to_json()["messages"][-1]["info"]["finish"] == "length"


def test_renaming_the_chat_while_its_answer_is_written_keeps_what_is_typed(make_app, demo_engine, qtbot,
                                                                            monkeypatch):
    """The answer so far is saved every few seconds, and once more when it ends; neither resets a title
    being typed in the list (F2) to the old one (the saves in between changed the row: the title was
    reset every few seconds; the one at the end still reset it once)."""
    from PySide6.QtWidgets import QLineEdit

    from desktop_app.widgets import answer_saver
    from tests.gui.test_switch_while_answering import start_long_answer

    monkeypatch.setattr(answer_saver, "SAVE_EVERY_S", 0.005)
    monkeypatch.setattr(answer_saver, "SAVE_SHARE", 1.0)
    app = make_app().start()
    chat, store = app.window.chat, app.state.conversations.store
    saves = []
    saving = store.save
    monkeypatch.setattr(store, "save", lambda conv, touch=True, answering=None: (
        saves.append(answering is not None and bool(answering.content)), saving(conv, touch, answering)))
    start_long_answer(app, qtbot)
    view = chat.sidebar.view
    view.setCurrentIndex(view.model().index(0, 0))
    view.edit(view.currentIndex())
    editor = view.indexWidget(view.currentIndex())                   # F2's editor
    assert isinstance(editor, QLineEdit)
    editor.selectAll()
    qtbot.keyClicks(editor, "Sea sto")
    before = saves.count(True)
    qtbot.waitUntil(lambda: saves.count(True) >= before + 2 or not chat.generating, timeout=TIMEOUT)
    assert saves.count(True) >= before + 2, "the answer ended before it was saved twice"
    assert editor.text() == "Sea sto"
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)   # saved at its end too
    assert editor.text() == "Sea sto" and view.indexWidget(view.currentIndex()) is editor
    qtbot.keyClicks(editor, "ries")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: chat.conversation.title == "Sea stories", timeout=TIMEOUT)
    assert store.load_all()[0].title == "Sea stories"


def test_a_chat_renamed_while_its_answer_is_written_keeps_the_answer_on_disk(make_app, demo_engine, app_env, qtbot):
    """Every write of a chat whose answer is being written keeps the answer so far (a rename wrote the
    chat without it: a crash then lost it)."""
    from tests.gui.test_switch_while_answering import start_long_answer

    app = make_app().start()
    model = app.state.conversations
    conv = start_long_answer(app, qtbot)
    assert model.setData(model.index(model.row_of(conv.id)), "Renamed")     # a rename writes the chat
    saved = json.loads((app_env / "data" / "conversations" / f"{conv.id}.json").read_text())
    assert app.window.chat.generating
    assert saved["title"] == "Renamed" and saved["messages"][-1]["role"] == "assistant"
    assert saved["messages"][-1]["info"]["finish"] == INTERRUPTED and saved["messages"][-1]["content"]
