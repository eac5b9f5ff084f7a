"""The chat's sidebar: the saved conversations (most recent first), "New chat", search, delete.

Rows in this widget's signals and in `select_row` are the conversation model's own rows; the view
shows them through the search's filter."""
from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QPalette, QShortcut
from PySide6.QtWidgets import (
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QMessageBox,
    QPushButton,
    QStyledItemDelegate,
    QVBoxLayout,
    QWidget,
)

from ..models.conversation_filter import ConversationFilterModel
from ..plain_text import message_box
from ..transient_dialogs import open_once

SEARCH_DELAY_MS = 150          # typing pauses this long before the list is filtered


class TitleDelegate(QStyledItemDelegate):
    """Renaming (F2): a conversation saved while its title is being typed (its answer ended) would put
    the old title back into the editor; what the user typed stays."""

    def setEditorData(self, editor, index) -> None:  # noqa: N802 - Qt's name
        if isinstance(editor, QLineEdit) and editor.isModified():
            return
        super().setEditorData(editor, index)


class ConversationList(QWidget):
    new_requested = Signal()
    conversation_selected = Signal(object)          # Conversation | None
    delete_requested = Signal(int)                   # row
    export_requested = Signal(int)                   # row

    def __init__(self, conversations, parent=None):
        super().__init__(parent)
        self.model = conversations
        self.new_button = QPushButton("New chat")
        self.new_button.setAccessibleName("New chat")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.clicked.connect(self.new_requested)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search chats (Ctrl+F)")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search conversations")
        self.search.setToolTip("Show the conversations whose title or messages contain every word typed here")
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self._apply_search)
        self.search.textChanged.connect(self._search_timer.start)
        self._quiet = False                              # the search is changing the rows shown
        self._open_id: str | None = None                 # the conversation last opened from the list
        self.filter = ConversationFilterModel(self)
        self.filter.setSourceModel(conversations)
        self.no_match = QLabel("No conversation contains these words.")
        self.no_match.setWordWrap(True)
        self.no_match.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self.no_match.setVisible(False)
        for changed in (self.filter.rowsInserted, self.filter.rowsRemoved, self.filter.modelReset):
            changed.connect(self._update_no_match)
        self.view = QListView()
        self.view.setUniformItemSizes(True)       # one line a chat: not laid out row by row (thousands)
        self.view.setAccessibleName("Conversations")
        self.view.setModel(self.filter)
        self.view.setEditTriggers(QListView.EditTrigger.EditKeyPressed)   # F2 renames; a click only opens
        self.view.setItemDelegate(TitleDelegate(self.view))
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.view.customContextMenuRequested.connect(self._on_view_menu)
        self.view.selectionModel().currentChanged.connect(self._on_view_current_changed)
        delete = QShortcut(QKeySequence.StandardKey.Delete, self.view)
        delete.activated.connect(self._delete_current)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.new_button)
        lay.addWidget(self.search)
        lay.addWidget(self.no_match)
        lay.addWidget(self.view, 1)

    def select_row(self, row: int) -> None:
        """Open the conversation at the model's `row` (a search that hides it is cleared)."""
        if not 0 <= row < self.model.rowCount():
            self._open_id = None
            self.conversation_selected.emit(None)
            return
        shown = self.filter.mapFromSource(self.model.index(row))
        if not shown.isValid():
            self.search.clear()
            self._apply_search()
            shown = self.filter.mapFromSource(self.model.index(row))
        self.view.selectionModel().setCurrentIndex(shown, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def select_first(self) -> None:
        """Open the first conversation shown (the most recent one the search finds)."""
        if self.filter.rowCount():
            self.select_row(self.filter.mapToSource(self.filter.index(0, 0)).row())
        else:
            self.select_row(0)

    def _apply_search(self) -> None:
        """Filter the list; the conversation open stays open (and selected while it is shown)."""
        self._search_timer.stop()
        self._quiet = True               # rows hidden or shown again are not the user choosing one
        try:
            self.filter.set_query(self.search.text())
            row = self.model.row_of(self._open_id) if self._open_id else -1
            shown = self.filter.mapFromSource(self.model.index(row)) if row >= 0 else None
            if shown is not None and shown.isValid():
                self.view.selectionModel().setCurrentIndex(shown, QItemSelectionModel.SelectionFlag.ClearAndSelect)
            else:
                self.view.selectionModel().clear()
        finally:
            self._quiet = False
        self._update_no_match()

    def _update_no_match(self, *_args) -> None:
        self.no_match.setVisible(self.filter.searching() and self.filter.rowCount() == 0)

    def _source_row(self, index) -> int:
        return self.filter.mapToSource(index).row() if index.isValid() else -1

    def _on_view_current_changed(self, current, _previous) -> None:
        if self._quiet:
            return
        row = self._source_row(current)
        conv = self.model.conversation(row) if row >= 0 else None
        self._open_id = conv.id if conv is not None else None
        self.conversation_selected.emit(conv)

    def _on_view_menu(self, pos) -> None:
        idx = self.view.indexAt(pos)
        if not idx.isValid():
            return
        menu = QMenu(self)
        rename = menu.addAction("Rename")
        export = menu.addAction("Export…")
        delete = menu.addAction("Delete conversation")
        chosen = menu.exec(self.view.viewport().mapToGlobal(pos))
        if chosen is rename:
            self.view.edit(idx)
        elif chosen is delete:
            self._confirm_delete(self._source_row(idx))
        elif chosen is export:
            self.export_requested.emit(self._source_row(idx))

    def _delete_current(self) -> None:
        row = self._source_row(self.view.currentIndex())
        if row >= 0:
            self._confirm_delete(row)

    def _confirm_delete(self, row: int) -> None:
        """Delete is for good (the file goes): asked first, so a Delete key pressed in the list by
        mistake loses nothing. The conversation is found again by id when the answer comes (an answer
        finishing meanwhile moves its chat to the top)."""
        conv = self.model.conversation(row)
        n = len(conv.messages)
        box = message_box(QMessageBox.Icon.Question, "Delete conversation?",
                          f"Delete “{conv.title}” and its {n} message{'s' if n != 1 else ''} from this computer? "
                          "This cannot be undone.", QMessageBox.StandardButton.Cancel, self)
        box.setAccessibleName("Delete conversation")
        delete = box.addButton("Delete", QMessageBox.ButtonRole.DestructiveRole)
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.buttonClicked.connect(lambda button: button is delete and self.model.row_of(conv.id) >= 0
                                  and self.delete_requested.emit(self.model.row_of(conv.id)))
        self.delete_box = open_once(box)
