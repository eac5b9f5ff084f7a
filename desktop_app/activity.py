"""Activities: installs and downloads shown in the downloads panel (progress, cancel, outcome)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt

from adapters_backend.units import transfer_text

from .plain_text import plain_tip


@dataclass
class Activity:
    id: int
    kind: str                       # "install" | "download"
    title: str
    done: float = 0.0
    total: float = 0.0
    message: str = ""
    state: str = "running"          # running | done | failed | cancelled
    error: str = ""
    warning: str = ""               # finished, but something the user must know (e.g. it does not fit)
    started: float = field(default_factory=time.monotonic)
    handle: object = None           # JobHandle (for cancel)
    retry: object = None            # callable that starts it again (resume)

    @property
    def fraction(self) -> float | None:
        return self.done / self.total if self.total > 0 else None

    def status_text(self) -> str:
        if self.state == "failed":
            return f"Failed: {self.error}"
        if self.state == "cancelled":
            return "Cancelled"
        if self.state == "done":
            done = "Done" + (f" — {self.message}" if self.message else "")
            return f"⚠ {done}, but {self.warning}" if self.warning else done
        parts = []
        if self.kind == "download" and self.total > 0:
            elapsed = max(time.monotonic() - self.started, 1e-6)
            parts.append(transfer_text(self.done, self.total, self.done / elapsed))
        elif self.fraction is not None:
            parts.append(f"{100 * self.fraction:.0f}%")
        if self.message:
            parts.append(self.message)
        return " · ".join(parts) or "Working…"


class ActivityListModel(QAbstractListModel):
    ActivityRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent=None):
        super().__init__(parent)
        self._items: list[Activity] = []
        self._next = 0

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._items)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        a = self._items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{a.title} — {a.status_text()}"
        if role == self.ActivityRole:
            return a
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tip(a.error or a.warning or a.message or a.title)
        return None

    def activities(self) -> list[Activity]:
        return list(self._items)

    def start(self, kind: str, title: str, handle=None, retry=None) -> Activity:
        self._next += 1
        a = Activity(self._next, kind, title, handle=handle, retry=retry)
        self.beginInsertRows(QModelIndex(), 0, 0)
        self._items.insert(0, a)
        self.endInsertRows()
        return a

    def update(self, a: Activity, **changes) -> None:
        for k, v in changes.items():
            setattr(a, k, v)
        if a in self._items:
            row = self._items.index(a)
            idx = self.index(row)
            self.dataChanged.emit(idx, idx)

    def clear_finished(self) -> None:
        for row in reversed(range(len(self._items))):
            if self._items[row].state != "running":
                self.beginRemoveRows(QModelIndex(), row, row)
                del self._items[row]
                self.endRemoveRows()
