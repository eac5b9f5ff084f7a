"""One streamed answer in the compare and sweep views: a title, the text, and its statistics; a failed
answer says why in place of the text, with Retry. A thinking model's reasoning is folded above the
answer, as in the chat: the answers are what the panes compare."""
from __future__ import annotations

import html
import re

from PySide6.QtCore import Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QSizePolicy, QToolButton, QVBoxLayout

from ..reasoning import split_reasoning
from .elided_label import ElidedLabel
from .markdown_view import MarkdownView
from .reasoning_fold import ReasoningFold


class ResultPane(QFrame):
    retry_requested = Signal()

    def __init__(self, title: str, parent=None, can_retry: bool = False, formatted: bool = False):
        """`formatted`: the answer's Markdown is laid out, as in the chat (markdown_view.py)."""
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(f"<b>{html.escape(title)}</b>")
        self.title.setWordWrap(True)
        self._formatted = formatted
        self.reasoning_fold = ReasoningFold(scrolls=True)
        self.text = self._new_text(title)
        # One line, shortened to fit (the whole line in its tooltip): a long error never widens the
        # pane and squeezes its neighbour.
        self.info = ElidedLabel("waiting…")
        self.info.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.info.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.retry_button = QToolButton()
        self.retry_button.setText("Retry")
        self.retry_button.setAccessibleName(f"Retry {title}")
        self.retry_button.setAutoRaise(True)
        self.retry_button.clicked.connect(self.retry_requested)
        self.retry_button.setVisible(False)
        self._can_retry = can_retry
        foot = QHBoxLayout()
        foot.setContentsMargins(0, 0, 0, 0)
        foot.addWidget(self.info, 1)
        foot.addWidget(self.retry_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addWidget(self.title)
        lay.addWidget(self.reasoning_fold)
        lay.addWidget(self.text, 1)
        lay.addLayout(foot)
        self._content = ""
        self.failure = ""

    def _new_text(self, title: str):
        if self._formatted:
            box = MarkdownView(scrolls=True)
        else:
            box = QPlainTextEdit()
            box.setReadOnly(True)
        box.setAccessibleName(f"Answer: {title}")
        box.setMinimumHeight(60)
        return box

    def _show(self, writing: bool = False) -> None:
        parts = split_reasoning(self._content)
        self.reasoning_fold.show_parts(parts, writing)
        text = parts.answer
        if self.failure:
            said = f"⚠ Not answered: {_as_text(self.failure) if self._formatted else self.failure}"
            text = f"{text}\n\n{said}" if text else said
        if self._formatted:
            self.text.setText(text)
        else:
            self.text.setPlainText(text)

    def append(self, piece: str) -> None:
        self._content += piece
        self._show(writing=True)

    def reset(self, title: str, formatted: bool | None = None) -> None:
        """A new answer, titled `title`; `formatted` (when given) switches how answers are shown."""
        if formatted is not None and formatted != self._formatted:
            self._formatted = formatted
            old, self.text = self.text, self._new_text(title)
            self.layout().replaceWidget(old, self.text)
            old.deleteLater()
        self.set_title(title)
        self._content = ""
        self.failure = ""
        self._show()
        self.info.setText("waiting…")
        self.retry_button.setVisible(False)

    def content(self) -> str:
        return self._content

    def set_title(self, title: str) -> None:
        self.title.setText(f"<b>{html.escape(title)}</b>")

    def set_info(self, text: str) -> None:
        """The line under the answer, given when it ends (its statistics, or "stopped"): a reasoning
        not closed by then was cut short (the answer's text is shown already)."""
        self.info.setText(text)
        self.reasoning_fold.show_parts(split_reasoning(self._content))

    def set_failed(self, reason: str) -> None:
        """The answer failed: the reason goes where the text is (it wraps there), Retry beside the info."""
        self.failure = reason
        self._show()
        self.info.setText("failed")
        self.retry_button.setVisible(self._can_retry)


def _as_text(text: str) -> str:
    """`text` escaped for Markdown: a file name's `_` or `*` is not emphasis."""
    return _MARKS.sub(r"\\\1", text)


_MARKS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")
