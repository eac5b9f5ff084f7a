"""Answers are shown with their Markdown laid out (desktop_app/widgets/markdown_view.py), safely: no HTML,
no image ever read, only web links opened and only on a click, slow shapes shown as text; View →
Format answers turns it off and on."""
from __future__ import annotations

import os
import time

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDesktopServices, QFont, QGuiApplication, QImage, QTextCursor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QLabel

from desktop_app.conversation_store import Conversation, Message
from desktop_app.widgets import markdown_view
from desktop_app.widgets.markdown_view import MarkdownView
from desktop_app.widgets.message_widget import LONG_CHARS, MessageWidget

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

ANSWER = """## Plan

Use **bold**, *italic* and `inline code`, see [the docs](https://example.com/docs).

1. First step
2. Second step

```python
def double(x):
    return x * 2  # and a comment long enough to run past the side of the column, so it has to wrap around
```

| Name | Value |
|------|-------|
| a    | 1     |
"""


def blocks(view: MarkdownView):
    block = view.document().begin()
    while block.isValid():
        yield block
        block = block.next()


def shown(widget: MessageWidget, qtbot, width: int = 600) -> MessageWidget:
    qtbot.addWidget(widget)
    widget.resize(width, 400)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_an_answers_markdown_is_laid_out_and_copied_as_written(qtbot):
    w = shown(MessageWidget("assistant", ANSWER, formatted=True), qtbot)
    view = w.body
    assert isinstance(view, MarkdownView) and view.formatted and view.text() == ANSWER
    text = view.toPlainText()
    assert "**" not in text and "```" not in text and "## " not in text and "|---" not in text
    assert any(b.blockFormat().headingLevel() == 2 and b.text() == "Plan" for b in blocks(view))
    bold = view.document().find("bold")
    assert bold.charFormat().fontWeight() == QFont.Weight.Bold
    code = view.document().find("def double")
    assert code.charFormat().fontFixedPitch() or "mono" in code.charFormat().fontFamilies()[0].lower()
    assert view.document().rootFrame().childFrames(), "the table is a table"
    # Code wraps: nothing runs past the side of a column without horizontal scrolling.
    w.resize(300, 400)
    qtbot.waitUntil(lambda: view.width() < 300)
    assert view.document().size().width() <= view.width() + 1
    # The view is as tall as its text: nothing hidden, nothing to scroll inside it.
    qtbot.waitUntil(lambda: view.height() >= view.heightForWidth(view.width()))
    assert view.verticalScrollBar().maximum() == 0
    w.copy_button.click()
    assert QGuiApplication.clipboard().text() == ANSWER                      # the Markdown, as written
    you = MessageWidget("user", "**not** formatted", formatted=True)
    assert isinstance(you.body, QLabel) and you.body.text() == "**not** formatted"


def test_html_in_an_answer_is_text_and_nested_tables_cost_nothing(qtbot):
    nested = "<table><tr><td>" * 20 + "deep" + "</td></tr></table>" * 20
    answer = f"A <b>tag</b> and <script>alert(1)</script>.\n\n{nested}\n"
    started = time.perf_counter()
    w = shown(MessageWidget("assistant", answer, formatted=True), qtbot)
    assert time.perf_counter() - started < 2          # as HTML, 20 levels did not finish in 100 s
    text = w.body.toPlainText()
    assert "<b>tag</b>" in text and "<script>alert(1)</script>" in text and "<table><tr><td>" in text
    assert not w.body.document().rootFrame().childFrames()


def test_an_image_in_an_answer_is_never_read(qtbot, tmp_path):
    picture = tmp_path / "secret.png"
    image = QImage(400, 400, QImage.Format.Format_RGB32)
    image.fill(0x336699)
    assert image.save(str(picture))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)                       # reading it would wait for a writer forever
    answer = (f"Here: ![a chart]({picture.as_uri()}) and ![]({picture}) and ![x](/dev/zero) "
              f"and ![pipe]({fifo}).")
    w = shown(MessageWidget("assistant", answer, formatted=True), qtbot)
    view = w.body
    assert view.toPlainText() == "Here: [a chart] and  and [x] and [pipe]."     # Qt drops one without alt text
    for block in blocks(view):
        it = block.begin()
        while not it.atEnd():
            assert not it.fragment().charFormat().isImageFormat()
            it += 1
    assert view.heightForWidth(view.width()) < 3 * view.fontMetrics().lineSpacing()   # no 400-pixel picture
    assert view.loadResource(2, QUrl.fromLocalFile(str(picture))) is None


def link_point(view: MarkdownView, words: str) -> QPoint:
    cursor = view.document().find(words)
    assert not cursor.isNull()
    middle = QTextCursor(view.document())
    middle.setPosition((cursor.selectionStart() + cursor.selectionEnd()) // 2)
    return view.cursorRect(middle).center()


def test_only_a_clicked_web_link_opens(qtbot, monkeypatch):
    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", staticmethod(lambda url: opened.append(url.toString())))
    answer = "Read [the web page](https://example.com/a) or [a file](file:///etc/passwd) or [run](javascript:x)."
    w = shown(MessageWidget("assistant", answer, formatted=True), qtbot)
    view = w.body
    assert not opened                                                         # nothing opens by itself
    for words in ("a file", "run", "the web page"):
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=link_point(view, words))
    assert opened == ["https://example.com/a"]
    qtbot.mouseMove(view.viewport(), link_point(view, "a file"))
    qtbot.waitUntil(lambda: "file:///etc/passwd" in view.toolTip())
    assert "not opened" in view.toolTip()


def test_the_wheel_over_an_answer_scrolls_the_chat(make_app, qtbot):
    app = make_app().start()
    chat = app.window.chat
    conv = Conversation.new()
    for i in range(6):
        conv.messages += [Message("user", f"question {i}"), Message("assistant", ANSWER, {"model": "m"})]
    app.state.conversations.add(conv)
    chat.open_conversation(conv)
    bar = chat.scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0 and bar.value() == bar.maximum())
    answer = chat._message_widgets()[-1].body
    assert isinstance(answer, MarkdownView)
    # In the column it is exactly as tall as its text at its width: nothing hidden, no gap.
    assert answer.height() == answer.heightForWidth(answer.width()) == int(answer.document().size().height() + 0.999)
    before = bar.value()
    window = app.window
    at = answer.viewport().mapTo(window, QPoint(20, 10))
    QTest.wheelEvent(window.windowHandle(), QPointF(at), QPoint(0, 120))      # as a mouse's wheel does
    qtbot.waitUntil(lambda: bar.value() < before)


def test_shapes_slow_to_lay_out_are_shown_as_text(qtbot):
    table = "| step | value |\n|---|---|\n" + "| 1 | 2 |\n" * 5000        # a model looping on a table
    emphasis = "*a" * 30_000                                               # one paragraph of emphasis marks
    for answer in (table, emphasis):
        w = shown(MessageWidget("assistant", formatted=True), qtbot)
        started = time.perf_counter()
        w.set_text(answer)                             # as written: whole (opened again, its beginning)
        assert time.perf_counter() - started < 1.5     # formatted, the table took ~11 s to lay out here
        assert not w.body.formatted and w.body.toPlainText() == answer


def test_an_answer_too_slow_to_format_at_every_paint_is_formatted_once_written(qtbot, monkeypatch):
    w = shown(MessageWidget("assistant", formatted=True), qtbot)
    monkeypatch.setattr(markdown_view, "SLOW_MS", 0)            # every reading is "too slow" now
    for end in range(10, len(ANSWER) + 10, 10):
        w.set_text(ANSWER[:end])
    assert not w.body.formatted and w.body.toPlainText() == ANSWER          # shown as text meanwhile
    w.settle()
    assert w.body.formatted and "**" not in w.body.toPlainText()


def test_format_answers_is_a_view_setting(make_app, qtbot):
    app = make_app().start()
    window, chat = app.window, app.window.chat
    conv = Conversation.new()
    conv.messages += [Message("user", "**Hi**"), Message("assistant", ANSWER, {"model": "m"})]
    app.state.conversations.add(conv)
    chat.open_conversation(conv)
    you, answer = chat._message_widgets()
    assert window.format_action.isChecked() and isinstance(answer.body, MarkdownView)
    window.format_action.trigger()                                          # off
    assert isinstance(answer.body, QLabel) and answer.body.text() == ANSWER
    assert isinstance(you.body, QLabel) and you.body.text() == "**Hi**"
    assert answer.text() == ANSWER
    app.close()

    app2 = make_app().start()                                               # remembered at the next start
    assert not app2.window.format_action.isChecked()
    app2.window.chat.open_conversation(conv)
    assert isinstance(app2.window.chat._message_widgets()[-1].body, QLabel)
    app2.window.format_action.trigger()                                     # on again
    assert isinstance(app2.window.chat._message_widgets()[-1].body, MarkdownView)


def test_a_long_answer_opened_again_is_formatted_in_part_and_whole(qtbot):
    long_answer = (ANSWER + "\n") * (LONG_CHARS // len(ANSWER) + 2)
    w = shown(MessageWidget("assistant", long_answer, formatted=True), qtbot)
    assert w.whole_button.isVisible() and w.body.formatted
    assert len(w.body.text()) < LONG_CHARS and "**" not in w.body.toPlainText()
    w.whole_button.click()
    assert isinstance(w.whole, MarkdownView) and w.whole.text() == long_answer
    assert "**" not in w.whole.toPlainText() and w.whole.verticalScrollBar().maximum() > 0


def test_compare_and_sweep_panes_follow_the_setting(qtbot):
    from PySide6.QtWidgets import QPlainTextEdit

    from desktop_app.widgets.result_pane import ResultPane
    pane = ResultPane("A", formatted=True)
    qtbot.addWidget(pane)
    pane.reset("A: shout", formatted=True)
    for piece in ("## Hi\n\n", "**bold** and ", "`code`"):
        pane.append(piece)
    assert isinstance(pane.text, MarkdownView) and pane.text.toPlainText() == "Hi\nbold and code"
    assert pane.content() == "## Hi\n\n**bold** and `code`"
    pane.set_failed("my_adapter_v2 *x* does not fit")            # a reason is text, not Markdown
    assert pane.text.toPlainText().endswith("⚠ Not answered: my_adapter_v2 *x* does not fit")
    pane.reset("A: shout", formatted=False)                       # View → Format answers off
    assert isinstance(pane.text, QPlainTextEdit) and pane.text.toPlainText() == ""
    pane.append("**bold**")
    assert pane.text.toPlainText() == "**bold**"


def test_a_code_block_is_copied_whole_from_its_menu(qtbot):
    answer = "Run this:\n\n```python\ndef double(x):\n    return x * 2\n```\n\nThen `this`.\n\n    indented\n    code\n"
    w = shown(MessageWidget("assistant", answer, formatted=True), qtbot)
    view = w.body
    inside = link_point(view, "return x")
    assert view.code_block_at(inside) == "def double(x):\n    return x * 2"
    assert view.code_block_at(link_point(view, "indented")) == "indented\ncode"
    assert view.document().find("indented").charFormat().fontFixedPitch()     # Qt left it proportional
    assert view.code_block_at(link_point(view, "Run this")) is None
    menu = view.context_menu(inside)
    first = menu.actions()[0]
    assert first.text() == "Copy code block"
    first.trigger()
    assert QGuiApplication.clipboard().text() == "def double(x):\n    return x * 2"
    assert all(a.text() != "Copy code block" for a in view.context_menu(link_point(view, "Then")).actions())


def test_links_take_the_new_themes_colour(qtbot):
    """A link's colour is the application's when the answer is read; a theme switched (light ↔ dark)
    left old answers' links in the old theme's colour (dark blue on a dark background) until reopened."""
    from desktop_app import theme

    app = QGuiApplication.instance()

    def link_colour(view):
        for block in blocks(view):
            it = block.begin()
            while not it.atEnd():
                fmt = it.fragment().charFormat()
                if fmt.isAnchor():
                    return fmt.foreground().color()
                it += 1

    w = shown(MessageWidget("assistant", "See [the docs](https://example.com/docs).", formatted=True), qtbot)
    try:
        theme.apply(app, "light")
        qtbot.waitUntil(lambda: link_colour(w.body) == app.palette().link().color())
        light = link_colour(w.body)
        theme.apply(app, "dark")
        dark = app.palette().link().color()
        assert dark != light
        qtbot.waitUntil(lambda: link_colour(w.body) == dark)
        assert w.body.text() == "See [the docs](https://example.com/docs)." and w.body.formatted
    finally:
        theme.apply(app, "system")
