"""Where a message is written: the message box (Enter sends, Shift+Enter adds a line), Send and Stop,
and the Think box for a thinking model whose template can switch the reasoning off (Qwen3 …)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QPlainTextEdit, QPushButton, QSizePolicy, QVBoxLayout, QWidget

THINKING_KEY = "chat/thinking"          # the Think box's choice, remembered


def thinking_choice(state) -> bool | None:
    """The Think box's choice for a model whose chat template can switch the reasoning off; None for
    other models (their template decides). The chat, Compare and Sweep ask with it."""
    if state.model is None or not state.model.info.get("thinking_switch"):
        return None
    return state.settings.get(THINKING_KEY, True, bool)


class PromptEdit(QPlainTextEdit):
    """Enter sends, Shift+Enter adds a line."""

    submitted = Signal()

    def keyPressEvent(self, event):
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier):
            self.submitted.emit()
            return
        super().keyPressEvent(event)


class ChatInput(QWidget):
    def __init__(self, settings, parent=None):
        """`settings`: AppSettings (the Think box is remembered)."""
        super().__init__(parent)
        self.prompt = PromptEdit()
        self.prompt.setPlaceholderText("Message (Enter to send, Shift+Enter for a new line)")
        self.prompt.setAccessibleName("Message")
        self.prompt.setMaximumHeight(100)
        self.prompt.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.send_button = QPushButton("Send")
        self.send_button.setAccessibleName("Send")
        self.send_button.setToolTip("Send (Enter)")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setAccessibleName("Stop generating")
        self.stop_button.setToolTip("Stop the answer (Esc)")
        self.stop_button.setEnabled(False)
        self.think_box = QCheckBox("Think")
        self.think_box.setToolTip("Let the model reason before it answers (off: it answers at once). Only for "
                                  "thinking models whose chat template has the switch, such as Qwen3.")
        self.think_box.setChecked(settings.get(THINKING_KEY, True, bool))
        self.think_box.toggled.connect(lambda on: settings.set(THINKING_KEY, bool(on)))
        self.think_box.setVisible(False)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        buttons.addWidget(self.think_box)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.prompt, 1)
        row.addLayout(buttons)

    def show_think_box(self, model_info: dict | None) -> None:
        """Shown for a model whose chat template has the switch (engine info `thinking_switch`)."""
        self.think_box.setVisible(bool(model_info and model_info.get("thinking_switch")))

