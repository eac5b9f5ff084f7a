"""The open chat's messages, newest at the bottom, in a scroll area that follows new text while the
view is at the bottom.

Only the newest PAGE messages are widgets at first, and a chat that grows past KEEP_AT_MOST while
the view follows its end drops its oldest widgets again: every change of a message's text makes Qt
lay out all the word-wrapped messages of the column again (~0.75 ms each here), so a 1,000-message
chat stalled the window ~400 ms at each paint of a streamed answer and took ~3.8 s to open
(bench/bench_long_transcript.py). "Show earlier messages" at the top adds a page at a time, keeping
what is in view where it is.
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QPushButton, QScrollArea, QVBoxLayout, QWidget

from ..conversation_store import Message
from ..plain_text import plain_label
from .message_widget import MessageWidget

PAGE = 40
KEEP_AT_MOST = PAGE + PAGE // 2


class Transcript(QScrollArea):
    def __init__(self, make_widget: Callable[[Message], MessageWidget], parent=None):
        """`make_widget(message)` makes a message's widget (the chat view connects its buttons)."""
        super().__init__(parent)
        self._make_widget = make_widget
        self._earlier: list[Message] = []      # older messages that have no widget yet, oldest first
        self._anchor: int | None = None         # distance from the bottom to keep while a page is added
        self.stick_to_bottom = True
        inner = QWidget()
        self.box = QVBoxLayout(inner)
        self.box.setContentsMargins(6, 6, 6, 6)
        self.box.setSpacing(8)
        self.earlier_button = QPushButton()
        self.earlier_button.setAccessibleName("Show earlier messages")
        self.earlier_button.clicked.connect(self.show_earlier)
        self.earlier_button.hide()
        self.box.addWidget(self.earlier_button, 0, Qt.AlignmentFlag.AlignHCenter)
        self.box.addStretch(1)
        # Above the oldest message the model is still given, once a chat outgrew the context.
        self.window_marker = plain_label()
        self.window_marker.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.window_marker.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.window_marker.setWordWrap(True)
        self.window_marker.setAccessibleName("Context window")
        self.window_marker.hide()
        self.setWidgetResizable(True)
        self.setWidget(inner)
        self.setAccessibleName("Transcript")
        self.verticalScrollBar().rangeChanged.connect(self._on_range_changed)
        self.verticalScrollBar().valueChanged.connect(self._on_value_changed)

    # ------------------------------------------------------------------ content
    def insert_header(self, index: int, widget: QWidget) -> None:
        """A widget above the messages (the empty-chat hint, suggestions)."""
        self.box.insertWidget(index, widget)

    def message_widgets(self) -> list[MessageWidget]:
        return [w for w in (self.box.itemAt(i).widget() for i in range(self.box.count()))
                if isinstance(w, MessageWidget)]

    @property
    def hidden(self) -> int:
        """Messages above the first widget (not made into widgets yet)."""
        return len(self._earlier)

    def load(self, messages: list[Message]) -> None:
        """Show `messages` (the newest PAGE of them; the rest behind "Show earlier messages")."""
        for w in self.message_widgets():
            self.remove(w)
        self._earlier = list(messages[:-PAGE]) if len(messages) > PAGE else []
        for m in messages[len(self._earlier):]:
            self.append(self._make_widget(m))
        self._update_earlier_button()

    def append(self, widget: MessageWidget) -> None:
        self.box.insertWidget(self.box.count() - 1, widget)

    def remove(self, widget: QWidget) -> None:
        self.box.removeWidget(widget)
        widget.deleteLater()

    def show_earlier(self) -> None:
        """Make widgets for the previous PAGE messages, above the first one, leaving the view where it was."""
        if not self._earlier:
            return
        page, self._earlier = self._earlier[-PAGE:], self._earlier[:-PAGE]
        bar = self.verticalScrollBar()
        self._anchor = bar.maximum() - bar.value()
        at = self.box.indexOf(self.earlier_button) + 1
        for i, m in enumerate(page):
            self.box.insertWidget(at + i, self._make_widget(m))
        self._update_earlier_button()

    def trim(self) -> None:
        """While the view follows the end, keep at most KEEP_AT_MOST widgets: the oldest go back behind
        the button, down to PAGE."""
        widgets = self.message_widgets()
        if not self.stick_to_bottom or len(widgets) <= KEEP_AT_MOST:
            return
        drop = widgets[:len(widgets) - PAGE]
        self._earlier += [w.message for w in drop]
        for w in drop:
            self.remove(w)
        self._update_earlier_button()

    def _update_earlier_button(self) -> None:
        n = len(self._earlier)
        self.earlier_button.setText(f"Show earlier messages ({n:,} more)")
        self.earlier_button.setVisible(n > 0)

    def place_window_marker(self, left_out: int, text: str) -> None:
        """The line above the first message the model is given (`left_out`: messages before it in the chat)."""
        self.box.removeWidget(self.window_marker)
        widgets = self.message_widgets()
        at = left_out - self.hidden
        if left_out <= 0 or not 0 <= at < len(widgets):
            self.window_marker.hide()
            return
        self.window_marker.setText(text)
        self.box.insertWidget(self.box.indexOf(widgets[at]), self.window_marker)
        self.window_marker.show()

    # ------------------------------------------------------------------ scrolling
    def _on_value_changed(self, value: int) -> None:
        self.stick_to_bottom = value >= self.verticalScrollBar().maximum() - 4

    def _on_range_changed(self, _lo: int, hi: int) -> None:
        if self._anchor is not None:              # a page was added above: the same text stays in view
            self.verticalScrollBar().setValue(hi - self._anchor)
            self._anchor = None
        elif self.stick_to_bottom:
            self.verticalScrollBar().setValue(hi)
