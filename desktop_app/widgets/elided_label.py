"""A one-line label that shortens its text with "…" to the width it gets (the full text in its tooltip),
so a long adapter name or status line never widens the layout around it."""
from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QLabel, QSizePolicy

from ..plain_text import plain_tip

MIN_CHARS = 4            # the narrowest it gets: a few characters and the ellipsis


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent=None, mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight):
        super().__init__(parent)
        self._full = ""
        self._mode = mode
        self._own_tip = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.set_full_text(text)

    def full_text(self) -> str:
        return self._full

    def set_full_text(self, text: str) -> None:
        self._full = text or ""
        self._elide()
        self.updateGeometry()

    def setText(self, text: str) -> None:  # Qt's name; keeps QLabel's API working
        self.set_full_text(text)

    def set_tooltip(self, tip: str) -> None:
        """A tooltip of its own (shown instead of the full text)."""
        self._own_tip = tip
        self._elide()

    def is_elided(self) -> bool:
        return super().text() != self._full

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        m = self.contentsMargins()
        return QSize(fm.horizontalAdvance(self._full) + m.left() + m.right() + 2, super().sizeHint().height())

    def minimumSizeHint(self) -> QSize:
        fm = self.fontMetrics()
        m = self.contentsMargins()
        w = min(fm.horizontalAdvance(self._full), fm.horizontalAdvance("M" * MIN_CHARS + "…"))
        return QSize(w + m.left() + m.right(), super().minimumSizeHint().height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        m = self.contentsMargins()
        width = max(0, self.width() - m.left() - m.right())
        shown = self.fontMetrics().elidedText(self._full, self._mode, width) if self._full else ""
        if shown != super().text():
            super().setText(shown)
        tip = self._own_tip or (self._full if shown != self._full else "")
        tip = plain_tip(tip)
        if tip != self.toolTip():
            self.setToolTip(tip)
