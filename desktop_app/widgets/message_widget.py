"""One chat message: who said it, the text, and its actions (copy; edit for yours; regenerate)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QGuiApplication, QPalette
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QSizePolicy,
                               QToolButton, QVBoxLayout, QWidget)

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}


class MessageWidget(QFrame):
    copy_requested = Signal(str)
    edit_submitted = Signal(object, str)        # self, new text
    regenerate_requested = Signal()

    def __init__(self, role: str, text: str = "", info_text: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.role = role
        self.setObjectName(f"message_{role}")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        # Colours come from the palette, so light and dark themes both read well.
        self.setAutoFillBackground(True)
        self.setBackgroundRole(QPalette.ColorRole.AlternateBase if role == "user" else QPalette.ColorRole.Base)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        self.title = QLabel(f"<b>{ROLE_TITLES.get(role, role)}</b>")
        self.info = QLabel(info_text)
        self.info.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.info.setAccessibleName("Message details")
        self.body = QLabel(text)
        self.body.setTextFormat(Qt.TextFormat.PlainText)
        self.body.setWordWrap(True)
        self.body.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse
                                          | Qt.TextInteractionFlag.TextSelectableByKeyboard)
        self.body.setAccessibleName(f"{ROLE_TITLES.get(role, role)} message")
        policy = QSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        policy.setHeightForWidth(True)           # keep word-wrap height-for-width (setSizePolicy drops it)
        self.body.setSizePolicy(policy)
        self.body.setMinimumWidth(80)

        self.copy_button = self._tool("Copy", "Copy this message to the clipboard")
        self.copy_button.clicked.connect(self._copy)
        self.edit_button = self._tool("Edit", "Edit this message and send it again")
        self.edit_button.clicked.connect(self._start_edit)
        self.edit_button.setVisible(role == "user")
        self.regen_button = self._tool("Regenerate", "Answer again (Ctrl+R)")
        self.regen_button.clicked.connect(self.regenerate_requested)
        self.regen_button.setVisible(False)

        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addWidget(self.info, 1)
        head.addWidget(self.regen_button)
        head.addWidget(self.edit_button)
        head.addWidget(self.copy_button)
        self._editor: QPlainTextEdit | None = None
        self._edit_row: QWidget | None = None
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(10, 6, 10, 8)
        self.layout_.addLayout(head)
        self.layout_.addWidget(self.body)

    def _tool(self, text: str, tip: str) -> QToolButton:
        b = QToolButton()
        b.setText(text)
        b.setToolTip(tip)
        b.setAccessibleName(text)
        b.setAutoRaise(True)
        return b

    # -- content --
    def text(self) -> str:
        return self.body.text()

    def set_text(self, text: str) -> None:
        self.body.setText(text)

    def set_info(self, text: str) -> None:
        self.info.setText(text)

    def set_regenerate_visible(self, visible: bool) -> None:
        self.regen_button.setVisible(visible)

    def set_actions_enabled(self, enabled: bool) -> None:
        self.edit_button.setEnabled(enabled)
        self.regen_button.setEnabled(enabled)

    def _copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text())
        self.copy_requested.emit(self.text())

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
        self.body.show()
