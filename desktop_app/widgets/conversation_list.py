"""The chat's sidebar: the saved conversations (most recent first), "New chat", delete."""
from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QListView, QMenu, QPushButton, QVBoxLayout, QWidget


class ConversationList(QWidget):
    new_requested = Signal()
    conversation_selected = Signal(object)          # Conversation | None
    delete_requested = Signal(int)                   # row

    def __init__(self, conversations, parent=None):
        super().__init__(parent)
        self.model = conversations
        self.new_button = QPushButton("New chat")
        self.new_button.setAccessibleName("New chat")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.clicked.connect(self.new_requested)
        self.view = QListView()
        self.view.setAccessibleName("Conversations")
        self.view.setModel(conversations)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._on_view_menu)
        self.view.selectionModel().currentChanged.connect(self._on_view_current_changed)
        delete = QShortcut(QKeySequence.StandardKey.Delete, self.view)
        delete.activated.connect(self._delete_current)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.new_button)
        lay.addWidget(self.view, 1)

    def select_row(self, row: int) -> None:
        if 0 <= row < self.model.rowCount():
            self.view.selectionModel().setCurrentIndex(self.model.index(row),
                                                       QItemSelectionModel.SelectionFlag.ClearAndSelect)
        else:
            self.conversation_selected.emit(None)

    def _on_view_current_changed(self, current, _previous) -> None:
        self.conversation_selected.emit(self.model.conversation(current.row()) if current.isValid() else None)

    def _on_view_menu(self, pos) -> None:
        idx = self.view.indexAt(pos)
        if not idx.isValid():
            return
        menu = QMenu(self)
        delete = menu.addAction("Delete conversation")
        if menu.exec(self.view.viewport().mapToGlobal(pos)) is delete:
            self.delete_requested.emit(idx.row())

    def _delete_current(self) -> None:
        idx = self.view.currentIndex()
        if idx.isValid():
            self.delete_requested.emit(idx.row())
