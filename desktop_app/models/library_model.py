"""The adapter library as a table: name, format, variant, rank, base model, size, source, licence."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QModelIndex, QSortFilterProxyModel, Qt

from adapters_backend.units import format_bytes

from ..plain_text import plain_tip
from .rows_table import RowsTableModel

if TYPE_CHECKING:
    from adapters_backend.core.compat import Verdict
    from adapters_backend.library import LibraryEntry

COLUMNS = [("name", "Name"), ("format", "Format"), ("variant", "Variant"), ("rank", "Rank"),
           ("base_model", "Base model"), ("size", "Size"), ("source", "Source"), ("license", "Licence")]


def _show(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict) and "min" in value:
        return f"{value['min']}–{value['max']}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


class LibraryTableModel(RowsTableModel):
    COLUMNS = COLUMNS
    EntryRole = Qt.ItemDataRole.UserRole + 1
    IdRole = Qt.ItemDataRole.UserRole + 2
    SortRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent=None):
        super().__init__(parent)
        self.compat: dict[str, Verdict] = {}

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if (hit := self.cell(index)) is None:
            return None
        e, key = hit
        if role == Qt.ItemDataRole.DisplayRole:
            if key == "size":
                return format_bytes(e.size)
            return _show(getattr(e, key))
        if role == self.SortRole:
            v = getattr(e, key)
            return v if isinstance(v, (int, float)) else _show(v).lower()
        if role == Qt.ItemDataRole.ToolTipRole:
            verdict = self.compat.get(e.id)
            tip = str(e.path)
            if verdict and verdict.reason:
                tip += "\n" + verdict.reason
            return plain_tip(tip)
        if role == self.EntryRole:
            return e
        if role == self.IdRole:
            return e.id
        return None

    # -- access --
    def entries(self) -> list[LibraryEntry]:
        return list(self._rows)

    def entry(self, row: int) -> LibraryEntry:
        return self._rows[row]

    def entry_by_id(self, adapter_id: str) -> LibraryEntry | None:
        for e in self._rows:
            if e.id == adapter_id:
                return e
        return None

    def row_of(self, adapter_id: str) -> int:
        for i, e in enumerate(self._rows):
            if e.id == adapter_id:
                return i
        return -1

    # -- changes --
    def set_entries(self, entries: list[LibraryEntry]) -> None:
        """Replace the list, inserting/removing rows for what changed so selections survive."""
        new_ids = {e.id for e in entries}
        for row in reversed(range(len(self._rows))):
            if self._rows[row].id not in new_ids:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._rows[row]
                self.endRemoveRows()
        by_id = {e.id: i for i, e in enumerate(self._rows)}
        for e in entries:
            row = by_id.get(e.id)
            if row is None:
                n = len(self._rows)
                self.beginInsertRows(QModelIndex(), n, n)
                self._rows.append(e)
                self.endInsertRows()
            elif self._rows[row] != e:
                self._rows[row] = e
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def set_compat(self, compat: dict[str, Verdict]) -> None:
        self.compat = dict(compat)
        if self._rows:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._rows) - 1, len(COLUMNS) - 1))


class LibraryFilterModel(QSortFilterProxyModel):
    """Free-text search over every column, sorting by each column's natural value."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)
        self.setSortRole(LibraryTableModel.SortRole)
