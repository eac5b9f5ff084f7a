"""The list of conversations (sidebar of the chat view), most recent first.

The saved conversations are read a slice at a time between the window's events (a file each: about
1 s for 5,000 on a laptop disk, which froze the window at every start), on the GUI thread, so no
object crosses threads. Until they are in, the list holds what the user makes: a conversation
started or deleted meanwhile stays so when they arrive.

A conversation that cannot be written (a full disk, a read-only folder) stays in the list and open:
`file_problem` says so once, and it is written again with its next change and at quit
(`save_unsaved`); one that cannot be deleted stays listed."""
from __future__ import annotations

import time

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt, QTimer, Signal

from ..conversation_store import Conversation, ConversationStore, Message
from ..plain_text import plain_tip

SLICE_SECONDS = 0.012        # of reading between two turns of the event loop
TITLE_CHARS = 200            # a longer title typed or pasted is cut: the list shows one line


class ConversationListModel(QAbstractListModel):
    ConversationRole = Qt.ItemDataRole.UserRole + 1
    file_problem = Signal(str)          # a save or delete that failed, in words for the user

    def __init__(self, store: ConversationStore, parent=None):
        super().__init__(parent)
        self.store = store
        self._items: list[Conversation] = []
        self._unsaved: dict[str, Conversation] = {}  # changed but not written (id -> conversation)
        self._answering: tuple[Conversation, Message] | None = None   # an answer being written, and its chat
        self._removed: set[str] | None = None        # ids deleted while the files are being read
        self._unread, self._read = iter(()), []

    def start_loading(self) -> None:
        """Read the saved conversations in slices of SLICE_SECONDS; the model resets once with them."""
        self._removed, self._read = set(), []
        self._unread = iter(self.store.files())
        QTimer.singleShot(0, self, self._read_slice)

    def _read_slice(self) -> None:
        end = time.monotonic() + SLICE_SECONDS
        for f in self._unread:
            conv = self.store.read(f)
            if conv is not None:
                self._read.append(conv)
            if time.monotonic() > end:
                QTimer.singleShot(0, self, self._read_slice)
                return
        self._finish_loading()

    def _finish_loading(self) -> None:
        saved, removed = self._read, self._removed or set()
        self._read, self._removed = [], None
        held = {c.id for c in self._items}           # made or saved meanwhile: the objects the chat holds
        merged = self._items + [c for c in saved if c.id not in held and c.id not in removed]
        merged.sort(key=lambda c: -c.updated)
        self.beginResetModel()
        self._items = merged
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._items)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        c = self._items[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return c.title
        if role == Qt.ItemDataRole.ToolTipRole:
            n = sum(1 for m in c.messages if m.role == "user")
            return plain_tip(f"{c.title}\n{n} message(s), last changed "
                             f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(c.updated))}")
        if role == self.ConversationRole:
            return c
        return None

    def flags(self, index):
        flags = super().flags(index)
        return flags | Qt.ItemFlag.ItemIsEditable if index.isValid() else flags

    def setData(self, index, value, role=Qt.ItemDataRole.EditRole) -> bool:
        """A new title typed in the list (F2, or Rename… in its menu); an empty one keeps the old."""
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or not 0 <= index.row() < len(self._items):
            return False
        title = " ".join(str(value).split())[:TITLE_CHARS].strip()
        conv = self._items[index.row()]
        if not title or title == conv.title:
            return False
        conv.title = title
        self._write(conv, touch=False)       # renamed, not changed: it keeps its place in the list
        self.dataChanged.emit(index, index)
        return True

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

    def begin_answer(self, conv: Conversation, answer: Message) -> None:
        """An answer is being written in `conv` (a new one, or its last message continued): until
        `end_answer`, every write of `conv` keeps it as it is so far, marked interrupted (what a crash
        would leave, ConversationStore.save). Saves `conv` now, its question with it."""
        self._answering = (conv, answer)
        self.save(conv)

    def end_answer(self) -> None:
        self._answering = None

    def save(self, conv: Conversation) -> None:
        """Persist a changed conversation and move it to the top (there even when it could not be written)."""
        self._write(conv)
        row = self.row_of(conv.id)
        if row > 0:
            self.beginMoveRows(QModelIndex(), row, row, QModelIndex(), 0)
            self._items.insert(0, self._items.pop(row))
            self.endMoveRows()
            row = 0
        if row >= 0:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx)

    def save_in_place(self, conv: Conversation, touch: bool = True) -> None:
        """Write `conv` and leave the list as it is: the answer so far, or a draft, is not a change to
        show (`save` follows when the answer ends)."""
        self._write(conv, touch)

    def _write(self, conv: Conversation, touch: bool = True) -> str | None:
        """Write `conv`; why it could not be, or None."""
        answering = self._answering[1] if self._answering and self._answering[0] is conv else None
        try:
            self.store.save(conv, touch, answering)
        except OSError as exc:
            if conv.id not in self._unsaved:         # once, not at every answer while the disk is full
                self.file_problem.emit(f"The conversation “{conv.title}” could not be saved: {exc}. It stays "
                                       "open; LoRA Deck saves it again after its next answer and when you quit.")
            self._unsaved[conv.id] = conv
            return str(exc)
        self._unsaved.pop(conv.id, None)
        return None

    def unsaved(self) -> list[Conversation]:
        return list(self._unsaved.values())

    def save_unsaved(self) -> str | None:
        """Try the conversations not written yet once more; the reason the last one still failed, or None."""
        problems = [p for p in map(self._write, self.unsaved()) if p is not None]
        return problems[-1] if problems else None

    def remove(self, row: int) -> bool:
        """Delete a conversation and its file; False (and `file_problem`) when the file cannot be deleted."""
        if not 0 <= row < len(self._items):
            return False
        conv = self._items[row]
        try:
            self.store.delete(conv.id)
        except OSError as exc:
            self.file_problem.emit(f"The conversation “{conv.title}” could not be deleted: {exc}.")
            return False
        self._unsaved.pop(conv.id, None)
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._items[row]
        self.endRemoveRows()
        if self._removed is not None:
            self._removed.add(conv.id)
        return True
