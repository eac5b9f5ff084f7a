"""The adapter mix: which library adapters are active, each with a strength and an on/off switch.

Adapters that do not fit the loaded model stay in the mix but are held off, each with the reason,
until a model they fit is loaded again; the user's own switch (`MixEntry.enabled`) is kept as it was."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt, Signal

from ..plain_text import plain_tip

if TYPE_CHECKING:       # the backend's mix module is imported once the window is painted
    from adapters_backend.engines.base import ActiveAdapter
    from adapters_backend.mix_presets import MixEntry


class MixListModel(QAbstractListModel):
    """Ordered list of MixEntry. Every change goes through a method here so views stay in step."""

    EntryRole = Qt.ItemDataRole.UserRole + 1
    StrengthRole = Qt.ItemDataRole.UserRole + 2
    EnabledRole = Qt.ItemDataRole.UserRole + 3

    mix_edited = Signal()                    # any change that alters what the engine should run

    def __init__(self, parent=None):
        super().__init__(parent)
        self._entries: list[MixEntry] = []
        self._unfit: dict[str, str] = {}     # adapter id -> why it does not fit the loaded model

    # -- Qt model --
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._entries):
            return None
        e = self._entries[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{e.name} ({e.strength:+.2f})" if self.is_on(e) else f"{e.name} (off)"
        if role == self.EntryRole:
            return e
        if role == self.StrengthRole:
            return e.strength
        if role == self.EnabledRole:
            return e.enabled
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tip(e.path)
        return None

    def roleNames(self):
        return {**super().roleNames(), self.StrengthRole: b"strength", self.EnabledRole: b"enabled"}

    # -- access --
    def entries(self) -> list[MixEntry]:
        return list(self._entries)

    def entry(self, row: int) -> MixEntry:
        return self._entries[row]

    def row_of(self, adapter_id: str) -> int:
        for i, e in enumerate(self._entries):
            if e.adapter_id == adapter_id:
                return i
        return -1

    def engine_mix(self) -> list[ActiveAdapter]:
        """What the engine should run: enabled entries that fit the model (strength 0 kept: it is still a choice)."""
        return [e.active() for e in self._entries if self.is_on(e)]

    def is_on(self, entry: MixEntry) -> bool:
        return entry.enabled and entry.adapter_id not in self._unfit

    def unfit_reason(self, adapter_id: str) -> str | None:
        """Why the adapter is held off (it does not fit the loaded model), or None."""
        return self._unfit.get(adapter_id)

    def set_unfit(self, reasons: dict[str, str]) -> None:
        """The adapters (by id) that do not fit the loaded model, each with the reason; all others fit."""
        old, self._unfit = self._unfit, dict(reasons)
        for row, e in enumerate(self._entries):
            if old.get(e.adapter_id) != self._unfit.get(e.adapter_id):
                idx = self.index(row)
                self.dataChanged.emit(idx, idx)

    # -- changes --
    def add(self, entry: MixEntry) -> int:
        row = self.row_of(entry.adapter_id)
        if row >= 0:
            return row
        n = len(self._entries)
        self.beginInsertRows(QModelIndex(), n, n)
        self._entries.append(entry)
        self.endInsertRows()
        self.mix_edited.emit()
        return n

    def remove(self, row: int) -> None:
        if not 0 <= row < len(self._entries):
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._entries[row]
        self.endRemoveRows()
        self.mix_edited.emit()

    def remove_adapter(self, adapter_id: str) -> None:
        self.remove(self.row_of(adapter_id))

    def set_strength(self, row: int, strength: float) -> None:
        from adapters_backend.mix_presets import clamp_strength
        s = round(clamp_strength(float(strength)), 4)
        if self._entries[row].strength == s:
            return
        self._entries[row].strength = s
        self._changed(row)

    def set_enabled(self, row: int, enabled: bool) -> None:
        if self._entries[row].enabled == bool(enabled):
            return
        self._entries[row].enabled = bool(enabled)
        self._changed(row)

    def set_layer_strengths(self, row: int, ranges: list) -> None:
        from adapters_backend.engines.base import normalize_layer_scales
        self._entries[row].layer_strengths = normalize_layer_scales(ranges)
        self._changed(row)

    def rename(self, adapter_id: str, name: str) -> None:
        row = self.row_of(adapter_id)
        if row >= 0:
            self._entries[row].name = name
            idx = self.index(row)
            self.dataChanged.emit(idx, idx)

    def replace_all(self, entries: list[MixEntry]) -> None:
        self.beginResetModel()
        self._entries = list(entries)
        self.endResetModel()
        self.mix_edited.emit()

    def _changed(self, row: int) -> None:
        idx = self.index(row)
        self.dataChanged.emit(idx, idx)
        self.mix_edited.emit()
