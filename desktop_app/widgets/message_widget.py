"""One chat message: who said it (for an answer, the model that wrote it), the text, and its actions
(copy; edit for yours; regenerate; Retry for a message left unanswered, with the reason).

A long message (a pasted document) is shown by its beginning, with "Show all" opening the whole text
in a box of its own height that scrolls: a word-wrapped label is laid out again at every change in
the column, so a pasted 100,000 characters held the window 68 ms (in paragraphs) to 138 ms (in one
line) at each paint of every later answer, and ~0.6 s at Send (bench/bench_long_transcript.py). An
answer being written is shown whole as it grows; a long one is shortened when the chat is opened again."""
from __future__ import annotations

import html

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..reasoning import Reasoned, split_reasoning
from .elided_label import ElidedLabel
from .markdown_view import MarkdownView
from .reasoning_fold import ReasoningFold
from .wrapped_label import WrappedLabel, wrapping_policy

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}
LONG_CHARS = 6000          # a message longer than this is shown by its beginning …
PREVIEW_CHARS = 1500       # … this long, until "Show all"
WHOLE_LINES = 24           # the height of the box that shows a long message whole


class MessageWidget(QFrame):
    copy_requested = Signal(str)
    edit_submitted = Signal(object, str)        # self, new text
    regenerate_requested = Signal()
    continue_requested = Signal()

    def __init__(self, role: str, text: str = "", info_text: str = "", parent: QWidget | None = None,
                 formatted: bool = False):
        """`formatted`: an answer's Markdown is laid out (headings, lists, code …), see markdown_view.py."""
        super().__init__(parent)
        self.role = role
        self._formatted = formatted and role == "assistant"
        self._text = text
        self.message = None                     # the conversation's Message shown here (set by the chat)
        self._model = ""
        self._info = info_text
        self.setObjectName(f"message_{role}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # Colours come from the palette, so light and dark themes both read well.
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.AlternateBase if role == "user" else QPalette.ColorRole.Base)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        self.title = QLabel(f"<b>{html.escape(ROLE_TITLES.get(role, role))}</b>")
        # One line, shortened to fit: a long mix or model name never widens the transcript.
        self.info = ElidedLabel(info_text)
        self.info.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.info.setAccessibleName("Message details")
        self.body = self._new_body()

        self.copy_button = self._tool("Copy", "Copy this message to the clipboard")
        self.copy_button.clicked.connect(self._copy)
        self.edit_button = self._tool("Edit", "Edit this message and send it again")
        self.edit_button.clicked.connect(self._start_edit)
        self.edit_button.setVisible(role == "user")
        self.regen_button = self._tool("Regenerate", "Answer again (Ctrl+R)")
        self.regen_button.clicked.connect(self.regenerate_requested)
        self.regen_button.setVisible(False)
        self.continue_button = self._tool("Continue", "Write more of this answer: it was cut short")
        self.continue_button.clicked.connect(self.continue_requested)
        self.continue_button.setVisible(False)
        self.retry_button = self._tool("Retry", "Answer this message again (Ctrl+R)")
        self.retry_button.clicked.connect(self.regenerate_requested)
        self.retry_button.setVisible(False)
        self.problem = WrappedLabel()           # why this message has no answer
        self.problem.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.problem.setAccessibleName("Why there is no answer")
        self.problem.setSizePolicy(wrapping_policy())
        self.problem.setVisible(False)
        self.whole_button = self._tool("Show all", "Show the whole message")
        self.whole_button.setCheckable(True)
        self.whole_button.toggled.connect(self._show_whole)
        self.whole: QPlainTextEdit | None = None     # the whole long message, while shown
        self._shown = text                      # what the body shows: the text, less any reasoning
        self.reasoning_fold = ReasoningFold()   # a thinking model's reasoning, folded above its answer
        self.reasoning_button, self.reasoning = self.reasoning_fold.button, self.reasoning_fold.text

        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addWidget(self.info, 1)
        head.addWidget(self.retry_button)
        head.addWidget(self.continue_button)
        head.addWidget(self.regen_button)
        head.addWidget(self.edit_button)
        head.addWidget(self.copy_button)
        self._editor: QPlainTextEdit | None = None
        self._edit_row: QWidget | None = None
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(10, 6, 10, 8)
        self.layout_.addLayout(head)
        self.layout_.addWidget(self.reasoning_fold)
        self.layout_.addWidget(self.body)
        self.layout_.addWidget(self.whole_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.layout_.addWidget(self.problem)
        self._show_text(text, shorten=True)

    def _new_body(self) -> QWidget:
        if self._formatted:
            body = MarkdownView()
        else:
            body = WrappedLabel()
            body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                         | Qt.TextInteractionFlag.TextSelectableByKeyboard)
            body.setSizePolicy(wrapping_policy())
        body.setAccessibleName(f"{ROLE_TITLES.get(self.role, self.role)} message")
        body.setMinimumWidth(80)
        return body

    def set_formatted(self, on: bool) -> None:
        """Show an answer's Markdown laid out, or as the plain text it is (View → Format answers)."""
        on = on and self.role == "assistant"
        if on == self._formatted:
            return
        self._formatted = on
        old, self.body = self.body, self._new_body()
        self.layout_.replaceWidget(old, self.body)
        old.deleteLater()
        if self._editor is None:
            self._show_text(self._text, shorten=not self.whole_button.isHidden())
        else:
            self.body.hide()

    def _tool(self, text: str, tip: str) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.setAccessibleName(text)
        b.setAutoRaise(True)
        return b

    # -- content --
    def text(self) -> str:
        return self._text

    def set_text(self, text: str) -> None:
        """The text as it grows (an answer being written): shown whole."""
        self._show_text(text, shorten=False)

    def _show_text(self, text: str, shorten: bool) -> None:
        self._text = text
        parts = split_reasoning(text) if self.role == "assistant" else Reasoned(None, text)
        self._shown = parts.answer
        self.reasoning_fold.show_parts(parts, writing=not shorten)     # (shown whole: being written)
        long = shorten and len(self._shown) > LONG_CHARS
        self.whole_button.blockSignals(True)
        self.whole_button.setChecked(False)
        self.whole_button.blockSignals(False)
        self._drop_whole()
        self.body.setText(_beginning(self._shown) if long else self._shown)
        self.body.setVisible(bool(self._shown) or parts.reasoning is None)
        self._offer_whole()
        self.whole_button.setVisible(long)

    def answer(self) -> str:
        """The text less a thinking model's reasoning (what Copy copies)."""
        return self._shown

    def _offer_whole(self) -> None:
        self.whole_button.setText(f"Show all ({len(self._shown):,} characters)")

    def _show_whole(self, on: bool) -> None:
        if not on:
            self._drop_whole()
            self.body.show()
            self._offer_whole()
            return
        if self._formatted:
            box = MarkdownView(self._shown, scrolls=True)
        else:
            box = QPlainTextEdit()
            box.setReadOnly(True)
            box.setPlainText(self._shown)
        box.setAccessibleName(f"Whole {ROLE_TITLES.get(self.role, self.role).lower()} message")
        # A fixed height: the column's layout then never measures the text (see the module's note).
        box.setFixedHeight(box.fontMetrics().lineSpacing() * WHOLE_LINES + 2 * box.frameWidth() + 8)
        self.whole = box
        self.body.hide()
        self.layout_.insertWidget(self.layout_.indexOf(self.body) + 1, box)
        self.whole_button.setText("Show less")

    def _drop_whole(self) -> None:
        if self.whole is not None:
            self.layout_.removeWidget(self.whole)
            self.whole.deleteLater()
            self.whole = None

    def settle(self) -> None:
        """The answer is written: its final text is shown as it will stay."""
        if isinstance(self.body, MarkdownView):
            self.body.settle()
        if self.role == "assistant":
            self.reasoning_fold.show_parts(split_reasoning(self._text))

    def set_info(self, text: str) -> None:
        self._info = text
        self._show_info()

    def set_model(self, label: str) -> None:
        """The model that wrote this answer, named first in its header."""
        self._model = label
        self._show_info()

    def model(self) -> str:
        return self._model

    def _show_info(self) -> None:
        self.info.set_full_text(" · ".join(p for p in (self._model, self._info) if p))

    def set_regenerate_visible(self, visible: bool) -> None:
        self.regen_button.setVisible(visible)

    def set_continue_visible(self, visible: bool) -> None:
        self.continue_button.setVisible(visible)

    def set_retry_visible(self, visible: bool) -> None:
        self.retry_button.setVisible(visible)

    def set_unanswered(self, reason: str) -> None:
        """Say why this message got no answer ("" clears it)."""
        self.problem.setText(f"⚠ Not answered: {reason}" if reason else "")
        self.problem.setVisible(bool(reason))

    def set_actions_enabled(self, enabled: bool) -> None:
        self.edit_button.setEnabled(enabled)
        self.regen_button.setEnabled(enabled)
        self.retry_button.setEnabled(enabled)
        self.continue_button.setEnabled(enabled)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.answer())
        self.copy_requested.emit(self.answer())

    # -- editing (user messages) --
    def _start_edit(self) -> None:
        if self._editor is not None:
            return
        self._editor = QPlainTextEdit(self.text())
        self._editor.setAccessibleName("Edit message")
        self._editor.setMaximumHeight(140)
        send = QPushButton("Send")
        send.setDefault(True)
        send.setAccessibleName("Send edited message")
        cancel = QPushButton("Cancel")
        send.clicked.connect(self._submit_edit)
        cancel.clicked.connect(self._end_edit)
        row = QWidget()
        lay = QHBoxLayout(row)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addStretch(1)
        lay.addWidget(cancel)
        lay.addWidget(send)
        self._edit_row = row
        self.body.hide()
        self.whole_button.hide()
        self._drop_whole()
        self.layout_.addWidget(self._editor)
        self.layout_.addWidget(row)
        self._editor.setFocus()

    def _submit_edit(self) -> None:
        text = self._editor.toPlainText().strip() if self._editor else ""
        self._end_edit()
        if text:
            self.edit_submitted.emit(self, text)

    def _end_edit(self) -> None:
        for w in (self._editor, self._edit_row):
            if w is not None:
                w.deleteLater()
        self._editor = self._edit_row = None
        self._show_text(self._text, shorten=True)




def _beginning(text: str) -> str:
    """The first PREVIEW_CHARS of a long text, ended at a word break where there is one near."""
    cut = text[:PREVIEW_CHARS]
    space = cut.rfind(" ", PREVIEW_CHARS - 80)
    return (cut[:space] if space > 0 else cut).rstrip() + " …"
