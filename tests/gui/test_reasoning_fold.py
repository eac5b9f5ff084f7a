"""A thinking model's reasoning (<think> … </think>) is folded above its answer: the answer is shown
and copied alone, the reasoning opens on request, and while it is being written the fold says so."""
from __future__ import annotations

import pytest
from PySide6.QtGui import QGuiApplication

from desktop_app.reasoning import answer_part, split_reasoning
from desktop_app.widgets.message_widget import MessageWidget

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

REPLY = "<think>\nThe user wants the capital. France's capital is Paris.\n</think>\n\nThe capital of **France** is Paris."


@pytest.mark.parametrize("text, reasoning, answer, thinking", [
    (REPLY, "The user wants the capital. France's capital is Paris.", "The capital of **France** is Paris.", False),
    ("  <think>Half a thou", "Half a thou", "", True),                           # still thinking
    ("Opened by the prompt.\n</think>\n\nParis.", "Opened by the prompt.", "Paris.", False),
    ("Close it with `</think>` then.", None, "Close it with `</think>` then.", False),   # quoted: text
    ("An answer that says <think> later.", None, "An answer that says <think> later.", False),
    ("Plain answer.", None, "Plain answer.", False),
])
def test_reasoning_is_told_apart_from_the_answer(text, reasoning, answer, thinking):
    got = split_reasoning(text)
    assert (got.reasoning, got.answer, got.thinking) == (reasoning, answer, thinking)
    assert answer_part(text) == answer


@pytest.mark.parametrize("formatted", [True, False])
def test_the_reasoning_is_folded_above_the_answer(qtbot, formatted):
    w = MessageWidget("assistant", REPLY, formatted=formatted)
    qtbot.addWidget(w)
    w.show()
    assert w.text() == REPLY                                                # kept whole
    assert w.body.text() == "The capital of **France** is Paris."
    assert w.reasoning_button.isVisible() and w.reasoning_button.text() == "Reasoning (9 words)"
    assert not w.reasoning.isVisible() and w.reasoning.text() == ""        # folded: not even laid out
    w.reasoning_button.click()
    assert w.reasoning.isVisible() and w.reasoning.text().startswith("The user wants the capital.")
    w.copy_button.click()
    assert QGuiApplication.clipboard().text() == "The capital of **France** is Paris."
    you = MessageWidget("user", REPLY)                                      # a question is shown as written
    assert you.body.text() == REPLY and not you.reasoning_button.isVisibleTo(you)


def test_while_the_model_thinks_the_fold_says_so(qtbot):
    w = MessageWidget("assistant", formatted=True)
    qtbot.addWidget(w)
    w.show()
    for end in range(1, len(REPLY) + 1):
        w.set_text(REPLY[:end])
        if REPLY[:end].startswith("<think>") and "</think>" not in REPLY[:end]:
            assert w.reasoning_button.text().startswith("Thinking…") and not w.body.isVisible()
    assert w.reasoning_button.text() == "Reasoning (9 words)" and w.body.isVisible()
    assert w.body.text() == "The capital of **France** is Paris."



def test_a_reasoning_cut_short_does_not_say_the_model_is_still_thinking(qtbot):
    """An answer that ended inside its reasoning (Max tokens, Stop, LoRA Deck closed while writing it)."""
    cut = REPLY[:40]
    w = MessageWidget("assistant", formatted=True)
    qtbot.addWidget(w)
    w.set_text(cut)
    assert w.reasoning_button.text() == "Thinking… (6 words)"
    w.settle()                                                             # it ended there
    assert w.reasoning_button.text() == "Reasoning, cut short (6 words)"
    opened = MessageWidget("assistant", cut)                               # a saved chat opened again
    qtbot.addWidget(opened)
    assert opened.reasoning_button.text() == "Reasoning, cut short (6 words)"


@pytest.mark.parametrize("formatted", [True, False])
def test_compare_and_sweep_panes_fold_the_reasoning_too(qtbot, formatted):
    """The panes compare answers: the reasoning is folded above each, said to be going on while it
    streams, and a failure is said after the answer, never inside the fold."""
    from desktop_app.widgets.result_pane import ResultPane

    pane = ResultPane("A", formatted=formatted)
    qtbot.addWidget(pane)
    pane.show()
    shown = (lambda: pane.text.toPlainText()) if not formatted else (lambda: pane.text.text())
    for piece in [REPLY[i:i + 7] for i in range(0, len(REPLY), 7)]:
        pane.append(piece)
        if "</think>" not in pane.content():
            assert pane.reasoning_fold.button.text().startswith("Thinking…") and shown() == ""
    assert pane.content() == REPLY                                        # kept whole
    assert pane.reasoning_fold.button.text() == "Reasoning (9 words)" and pane.reasoning_fold.isVisible()
    assert shown() == "The capital of **France** is Paris."
    assert not pane.reasoning_fold.text.isVisible()
    pane.reasoning_fold.button.click()
    assert pane.reasoning_fold.text.toPlainText().startswith("The user wants the capital.")
    pane.reset("A")
    pane.append(REPLY[:40])
    assert pane.reasoning_fold.button.text().startswith("Thinking…")
    pane.set_info("stopped")                                              # it ended inside its reasoning
    assert pane.reasoning_fold.button.text().startswith("Reasoning, cut short")
    pane.reset("A")
    pane.append(REPLY)
    pane.set_failed("the engine stopped")
    assert "Not answered" in shown() and shown().startswith("The capital of")
    assert "Not answered" not in pane.reasoning_fold.text.toPlainText()
    pane.reset("B")
    assert not pane.reasoning_fold.isVisible() and shown() == ""
    pane.append("Plain answer.")
    assert not pane.reasoning_fold.isVisible() and shown() == "Plain answer."


def test_an_open_reasoning_grows_where_it_is_read(qtbot):
    """Opened while it is written, the pane's reasoning gets the new words added at its end: what the
    reader scrolled to stays put (setting the whole text again would jump to the top)."""
    from desktop_app.widgets.result_pane import ResultPane

    pane = ResultPane("A")
    qtbot.addWidget(pane)
    pane.resize(300, 260)
    pane.show()
    pane.append("<think>\n" + "a line of thought\n" * 200)
    pane.reasoning_fold.button.click()
    bar = pane.reasoning_fold.text.verticalScrollBar()
    bar.setValue(bar.maximum() // 2)
    at = bar.value()
    assert at > 0
    pane.append("more thought\n")
    assert bar.value() == at
    assert pane.reasoning_fold.text.toPlainText().endswith("more thought")


def test_a_reasoning_the_template_opens_is_folded_from_the_first_word(make_app, demo_engine, vocab_gguf,
                                                                      tmp_path, qtbot):
    """A model whose template opens `<think>` in the prompt (DeepSeek-R1's): the answer's reasoning is
    folded (it showed as answer text until a `</think>` came), and an answer cut inside its reasoning
    is continued inside it: greedy, cut and continued equals the answer written in one go."""
    from PySide6.QtCore import Qt

    from tests.engines import engine_models as em

    r1 = em.random_model(tmp_path / "r1.gguf", vocab_gguf, em.R1_LIKE_TEMPLATE)
    app = make_app().start()
    chat, state = app.window.chat, app.state
    state.load_model(str(r1))
    qtbot.waitUntil(lambda: state.model is not None and state.model.path == str(r1), timeout=60000)
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.repeat_penalty.setValue(1.0)

    def ask(tokens: int) -> str:
        chat.new_chat()
        chat.sampling.max_tokens.setValue(tokens)
        chat.prompt.setPlainText("What is 2 + 2?")
        qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not chat.generating, timeout=60000)
        written = chat._message_widgets()[-1]
        # (a random model never closes it: the fold says it was cut short, and no answer text shows)
        assert written.reasoning_button.text().startswith("Reasoning, cut short") and not written.body.isVisible()
        return written

    whole = ask(10).text()
    answer = ask(4)
    assert answer.text().startswith("<think>\n") and whole.startswith(answer.text()) and answer.text() != whole
    chat.sampling.max_tokens.setValue(6)
    qtbot.mouseClick(answer.continue_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=60000)
    assert answer.text() == whole == chat.conversation.messages[-1].content
    app.close()
