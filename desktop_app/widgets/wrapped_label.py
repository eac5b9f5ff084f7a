"""A word-wrapped plain-text label that remembers its height for each width.

Qt's layouts ask a word-wrapped label for its height at a given width many times in one pass: for a
chat message, 13 times at three widths (the column's, and two minimum widths of the nested layouts),
and QLabel lays the whole text out again at every call. With a long answer growing at the bottom of
the chat, that was most of each paint's time, and every message of the column paid it again at every
paint although its text had not changed. This label answers a width it has seen from memory until its
text or font changes.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, Qt
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

REMEMBERED_WIDTHS = 8          # a window being resized passes many widths: keep only the recent ones

_INVALIDATING = (QEvent.Type.FontChange, QEvent.Type.StyleChange, QEvent.Type.ContentsRectChange)


class HeightMemo:
    """The heights a text widget answered for the widths it was asked about, the recent few; cleared
    when its text or font changes."""

    def __init__(self, measure):
        self._measure = measure              # width -> height, the costly way
        self._heights: dict[int, int] = {}

    def height(self, width: int) -> int:
        height = self._heights.get(width)
        if height is None:
            if len(self._heights) >= REMEMBERED_WIDTHS:
                self._heights.clear()
            height = self._heights[width] = self._measure(width)
        return height

    def clear(self) -> None:
        self._heights.clear()

    def __iter__(self):                      # the widths remembered
        return iter(self._heights)

    def __len__(self) -> int:
        return len(self._heights)


class WrappedLabel(QLabel):
    """Plain text (never markup, see plain_text.py), word-wrapped."""

    def __init__(self, text: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self._heights = HeightMemo(super().heightForWidth)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        self.setText(text)

    def setText(self, text: str) -> None:
        self._heights.clear()
        super().setText(text)

    def clear(self) -> None:
        self._heights.clear()
        super().clear()

    def heightForWidth(self, width: int) -> int:
        return self._heights.height(width)

    def changeEvent(self, event) -> None:
        if event.type() in _INVALIDATING:
            self._heights.clear()
        super().changeEvent(event)


def wrapping_policy() -> QSizePolicy:
    """As wide as the column, as tall as the text at that width (setSizePolicy would drop height-for-width)."""
    policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    policy.setHeightForWidth(True)
    return policy
