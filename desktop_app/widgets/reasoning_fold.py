"""A thinking model's reasoning (<think> … </think>), folded above its answer: a button that says how
long it is, or that the model is still at it, and opens it. Folded, the reasoning is not even laid out
(it can be thousands of words). The chat's messages grow with it; a Compare or Sweep pane scrolls it."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QToolButton, QVBoxLayout, QWidget

from ..reasoning import Reasoned
from .wrapped_label import WrappedLabel, wrapping_policy


class ReasoningFold(QWidget):
    def __init__(self, parent: QWidget | None = None, scrolls: bool = False):
        super().__init__(parent)
        self._reasoning: str | None = None
        self.button = QToolButton()
        self.button.setCheckable(True)
        self.button.setAutoRaise(True)
        self.button.setArrowType(Qt.ArrowType.RightArrow)
        self.button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.button.setToolTip("What the model wrote while thinking, before its answer")
        self.button.toggled.connect(self._open)
        if scrolls:
            self.text = QPlainTextEdit()
            self.text.setReadOnly(True)
        else:
            self.text = WrappedLabel()
            self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.text.setSizePolicy(wrapping_policy())
        self.text.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.text.setAccessibleName("Reasoning")
        self.text.setVisible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.button, 0, Qt.AlignmentFlag.AlignLeft)
        lay.addWidget(self.text, 1)
        self.setVisible(False)

    def show_parts(self, parts: Reasoned, writing: bool = False) -> None:
        """The reasoning of `parts` (hidden when it has none); `writing`: the answer is being written, so
        a reasoning not closed yet is the model still thinking (else the answer was cut inside it)."""
        self._reasoning = parts.reasoning
        self.setVisible(parts.reasoning is not None)
        if parts.reasoning is None:
            return
        words = f"{len(parts.reasoning.split()):,} words"
        self.button.setText(f"Thinking… ({words})" if parts.thinking and writing else
                            f"Reasoning, cut short ({words})" if parts.thinking else f"Reasoning ({words})")
        if self.button.isChecked():
            self._set(parts.reasoning)

    def _open(self, on: bool) -> None:
        self.button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self._set((self._reasoning or "") if on else "")          # folded, it costs no layout
        self.text.setVisible(on)

    def _set(self, text: str) -> None:
        if not isinstance(self.text, QPlainTextEdit):
            self.text.setText(text)
            return
        old = self.text.toPlainText()
        if old and text.startswith(old):           # it grows as it streams: add, keeping where one reads
            if len(text) > len(old):
                end = QTextCursor(self.text.document())
                end.movePosition(QTextCursor.MoveOperation.End)
                end.insertText(text[len(old):])
        elif text != old:
            self.text.setPlainText(text)
