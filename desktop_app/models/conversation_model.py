"""The list of conversations (sidebar of the chat view), most recent first."""
from __future__ import annotations

import time

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt

from ..conversation_store import Conversation, ConversationStore
from ..plain_text import plain_tip


class ConversationListModel(QAbstractListModel):
    ConversationRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, store: ConversationStore, parent=None):
        super().__init__(parent)
        self.store = store
        self._items: list[Conversation] = []

    def load(self) -> None:
        self.beginResetModel()
        self._items = self.store.load_all()
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._items)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        c = self._items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return c.title
        if role == Qt.ItemDataRole.ToolTipRole:
            n = sum(1 for m in c.messages if m.role == "user")
            return plain_tip(f"{c.title}\n{n} message(s), last changed "
                             f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(c.updated))}")
        if role == self.ConversationRole:
            return c
        return None

    def conversation(self, row: int) -> Conversation:
        return self._items[row]

    def row_of(self, conv_id: str) -> int:
        for i, c in enumerate(self._items):
            if c.id == conv_id:
                return i
        return -1

    def add(self, conv: Conversation) -> int:
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._items.insert(0, conv)
        self.endInsertRows()
        return 0

    def save(self, conv: Conversation) -> None:
        """Persist a changed conversation and move it to the top."""
        self.store.save(conv)
        row = self.row_of(conv.id)
        if row > 0:
            self.beginMoveRows(QModelIndex(), row, row, QModelIndex(), 0)
            self._items.insert(0, self._items.pop(row))
            self.endMoveRows()
            row = 0
        if row >= 0:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx)

    def remove(self, row: int) -> None:
        if not 0 <= row < len(self._items):
            return
        conv = self._items[row]
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._items[row]
        self.endRemoveRows()
        self.store.delete(conv.id)
