"""One streamed answer in the compare and sweep views: a title, the text, and its statistics; a failed
answer says why in place of the text, with Retry."""
from __future__ import annotations

import html

from PySide6.QtCore import Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QSizePolicy, QToolButton, QVBoxLayout

from .elided_label import ElidedLabel


class ResultPane(QFrame):
    retry_requested = Signal()

    def __init__(self, title: str, parent=None, can_retry: bool = False):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(f"<b>{html.escape(title)}</b>")
        self.title.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setAccessibleName(f"Answer: {title}")
        self.text.setMinimumHeight(60)
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
        lay.addWidget(self.text, 1)
        lay.addLayout(foot)
        self._content = ""
        self.failure = ""

    def append(self, piece: str) -> None:
        self._content += piece
        self.text.setPlainText(self._content)

    def reset(self, title: str) -> None:
        self.set_title(title)
        self._content = ""
        self.failure = ""
        self.text.clear()
        self.info.setText("waiting…")
        self.retry_button.setVisible(False)

    def content(self) -> str:
        return self._content

    def set_title(self, title: str) -> None:
        self.title.setText(f"<b>{html.escape(title)}</b>")

    def set_info(self, text: str) -> None:
        self.info.setText(text)

    def set_failed(self, reason: str) -> None:
        """The answer failed: the reason goes where the text is (it wraps there), Retry beside the info."""
        self.failure = reason
        self.text.setPlainText(f"{self._content}\n\n" if self._content else "")
        self.text.appendPlainText(f"⚠ Not answered: {reason}")
        self.info.setText("failed")
        self.retry_button.setVisible(self._can_retry)
