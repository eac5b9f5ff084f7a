"""One streamed answer in the compare and sweep views: a title, the text, and its statistics."""
from __future__ import annotations

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QFrame, QLabel, QPlainTextEdit, QVBoxLayout


class ResultPane(QFrame):
    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.title = QLabel(f"<b>{title}</b>")
        self.title.setWordWrap(True)
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        self.text.setAccessibleName(f"Answer: {title}")
        self.text.setMinimumHeight(60)
        self.info = QLabel("waiting…")
        self.info.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addWidget(self.title)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.info)
        self._content = ""

    def append(self, piece: str) -> None:
        self._content += piece
        self.text.setPlainText(self._content)

    def reset(self, title: str) -> None:
        self.set_title(title)
        self._content = ""
        self.text.clear()
        self.info.setText("waiting…")

    def content(self) -> str:
        return self._content

    def set_title(self, title: str) -> None:
        self.title.setText(f"<b>{title}</b>")

    def set_info(self, text: str) -> None:
        self.info.setText(text)
