"""The adapter library as a table: name, format, variant, rank, base model, size, source, licence."""
from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt

COLUMNS = [("name", "Name"), ("format", "Format"), ("variant", "Variant"), ("rank", "Rank"),
           ("base_model", "Base model"), ("size", "Size"), ("source", "Source"), ("license", "Licence")]


def human_size(n) -> str:
    if not isinstance(n, (int, float)) or n < 0:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def _show(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dict) and "min" in value:
        return f"{value['min']}–{value['max']}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


class LibraryTableModel(QAbstractTableModel):
    EntryRole = Qt.ItemDataRole.UserRole + 1
    IdRole = Qt.ItemDataRole.UserRole + 2
    SortRole = Qt.ItemDataRole.UserRole + 3

    def __init__(self, parent=None):
        super().__init__(parent)
        self._entries: list[dict] = []
        self.compat: dict[str, dict] = {}

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._entries)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section][1]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        e = self._entries[index.row()]
        key = COLUMNS[index.column()][0]
        if role == Qt.ItemDataRole.DisplayRole:
            if key == "size":
                return human_size(e.get("size"))
            return _show(e.get(key))
        if role == self.SortRole:
            v = e.get(key)
            return v if isinstance(v, (int, float)) else _show(v).lower()
        if role == Qt.ItemDataRole.ToolTipRole:
            verdict = self.compat.get(e["id"])
            tip = e["path"]
            if verdict and verdict.get("reason"):
                tip += "\n" + verdict["reason"]
            return tip
        if role == self.EntryRole:
            return e
        if role == self.IdRole:
            return e["id"]
        return None

    # -- access --
    def entries(self) -> list[dict]:
        return list(self._entries)

    def entry(self, row: int) -> dict:
        return self._entries[row]

    def entry_by_id(self, adapter_id: str) -> dict | None:
        for e in self._entries:
            if e["id"] == adapter_id:
                return e
        return None

    def row_of(self, adapter_id: str) -> int:
        for i, e in enumerate(self._entries):
            if e["id"] == adapter_id:
                return i
        return -1

    # -- changes --
    def set_entries(self, entries: list[dict]) -> None:
        """Replace the list, inserting/removing rows for what changed so selections survive."""
        new_ids = [e["id"] for e in entries]
        for row in reversed(range(len(self._entries))):
            if self._entries[row]["id"] not in new_ids:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._entries[row]
                self.endRemoveRows()
        by_id = {e["id"]: i for i, e in enumerate(self._entries)}
        for e in entries:
            row = by_id.get(e["id"])
            if row is None:
                n = len(self._entries)
                self.beginInsertRows(QModelIndex(), n, n)
                self._entries.append(e)
                self.endInsertRows()
            elif self._entries[row] != e:
                self._entries[row] = e
                self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def set_compat(self, compat: dict[str, dict]) -> None:
        self.compat = dict(compat)
        if self._entries:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._entries) - 1, len(COLUMNS) - 1))


class LibraryFilterModel(QSortFilterProxyModel):
    """Free-text search over every column, sorting by each column's natural value."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)
        self.setSortRole(LibraryTableModel.SortRole)
