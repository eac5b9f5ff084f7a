"""Hub search results (one page appended after another)."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt

from ..plain_text import plain_tip
from .rows_table import RowsTableModel

COLUMNS = [("repo_id", "Repository"), ("format", "Format"), ("base_model", "Base model"),
           ("downloads", "Downloads"), ("likes", "Likes"), ("updated", "Updated")]


class HubResultsModel(RowsTableModel):
    COLUMNS = COLUMNS
    ResultRole = Qt.ItemDataRole.UserRole + 1

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if (hit := self.cell(index)) is None:
            return None
        r, key = hit
        if role == Qt.ItemDataRole.DisplayRole:
            v = r.get(key)
            if v is None:
                return ""
            if key in ("downloads", "likes") and isinstance(v, int):
                return f"{v:,}"
            if key == "updated":
                return str(v)[:10]
            return str(v)
        if role == Qt.ItemDataRole.TextAlignmentRole and key in ("downloads", "likes"):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == self.ResultRole:
            return r
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tip(r.get("repo_id"))
        return None

    def result(self, row: int) -> dict:
        return self._rows[row]

    def clear(self) -> None:
        self.beginResetModel()
        self._rows = []
        self.endResetModel()

    def append(self, rows: list[dict]) -> None:
        known = {r["repo_id"] for r in self._rows}
        rows = [r for r in rows if r["repo_id"] not in known]
        if not rows:
            return
        n = len(self._rows)
        self.beginInsertRows(QModelIndex(), n, n + len(rows) - 1)
        self._rows.extend(rows)
        self.endInsertRows()
