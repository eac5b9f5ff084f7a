"""Search in the chat's sidebar: the conversations whose title, system prompt, messages or answers'
model and mix contain the words typed, in any case.

Every saved conversation is in memory once the list has loaded (ConversationListModel), so a search is
a scan of text already there; each conversation's case-folded text is kept until the conversation
changes (its `updated` time) or is renamed, so typing a longer query scans only that cache."""
from __future__ import annotations

from PySide6.QtCore import QSortFilterProxyModel

from ..conversation_store import Conversation


def searchable_text(conv: Conversation) -> str:
    """What a search looks in, case-folded: the title, the system prompt, the messages, and the model
    and mix each answer was written with (a chat is found by the adapter it used)."""
    details = [str(m.info.get(k, "")) for m in conv.messages for k in ("model", "mix") if m.info.get(k)]
    return "\n".join([conv.title, conv.system_prompt, *(m.content for m in conv.messages), *details]).casefold()


class ConversationFilterModel(QSortFilterProxyModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self._words: list[str] = []
        self._texts: dict[str, tuple[tuple, str]] = {}      # id -> ((updated, title), searchable text)

    def set_query(self, text: str) -> None:
        words = text.casefold().split()
        if words == self._words:
            return
        self.beginFilterChange()
        self._words = words
        if not words:
            self._texts.clear()                              # nothing to keep while nobody searches
        self.endFilterChange(QSortFilterProxyModel.Direction.Rows)

    def searching(self) -> bool:
        return bool(self._words)

    def filterAcceptsRow(self, source_row: int, source_parent) -> bool:
        if not self._words:
            return True
        conv = self.sourceModel().conversation(source_row)
        cached = self._texts.get(conv.id)
        if cached is None or cached[0] != (conv.updated, conv.title):     # changed, or renamed
            cached = self._texts[conv.id] = ((conv.updated, conv.title), searchable_text(conv))
        text = cached[1]
        return all(w in text for w in self._words)
