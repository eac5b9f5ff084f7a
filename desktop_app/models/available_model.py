"""Library adapters that can be added to the mix: those already in it are hidden, incompatible
ones are shown disabled (greyed by the view's style) with the compatibility check's reason."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSortFilterProxyModel, Qt

from ..plain_text import plain_tip
from .library_model import LibraryTableModel

if TYPE_CHECKING:
    from adapters_backend.core.compat import Verdict
    from adapters_backend.library import LibraryEntry


class AvailableAdaptersModel(QSortFilterProxyModel):
    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.setSourceModel(state.library_model)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        mix = state.mix_model
        for sig in (mix.rowsInserted, mix.rowsRemoved, mix.modelReset):
            sig.connect(self._refilter)
        state.compat_changed.connect(self._on_state_compat_changed)
        state.model_changed.connect(self._on_state_compat_changed)

    def _refilter(self, *_args) -> None:
        if hasattr(self, "beginFilterChange"):          # Qt >= 6.9; invalidateFilter is deprecated there
            self.beginFilterChange()
            self.endFilterChange()
        else:
            self.invalidateFilter()

    def _on_state_compat_changed(self, *_args) -> None:
        self.invalidate()

    def filterAcceptsRow(self, source_row, source_parent) -> bool:
        entry = self.sourceModel().entry(source_row)
        if self.state.mix_model.row_of(entry.id) >= 0:
            return False
        return super().filterAcceptsRow(source_row, source_parent)

    def verdict(self, proxy_row: int) -> Verdict | None:
        entry = self.entry(proxy_row)
        return self.state.compat.get(entry.id) if entry else None

    def entry(self, proxy_row: int) -> LibraryEntry | None:
        src = self.mapToSource(self.index(proxy_row, 0))
        return self.sourceModel().entry(src.row()) if src.isValid() else None

    def flags(self, index):
        flags = super().flags(index)
        entry = self.sourceModel().entry(self.mapToSource(index).row()) if index.isValid() else None
        if entry is not None:
            verdict = self.state.compat.get(entry.id)
            if (verdict and not verdict.usable) or self.state.model is None:
                flags &= ~Qt.ItemFlag.ItemIsEnabled
        return flags

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        entry = self.sourceModel().entry(self.mapToSource(index).row())
        verdict = self.state.compat.get(entry.id)
        unusable = verdict is not None and not verdict.usable
        if role == Qt.ItemDataRole.DisplayRole and index.column() == 0:
            label = entry.name
            if entry.format:
                label += f"  ({entry.format})"
            if unusable:
                label += " — incompatible"
            return label
        if role == Qt.ItemDataRole.ToolTipRole:
            if self.state.model is None:
                return "Load a model first."
            if unusable:
                return plain_tip(f"Cannot be used with this model: {verdict.reason or 'incompatible'}")
            return plain_tip(f"{entry.path}\n{verdict.reason}" if verdict and verdict.reason else str(entry.path))
        if role == Qt.ItemDataRole.AccessibleDescriptionRole and unusable:
            return verdict.reason
        return super().data(index, role)


__all__ = ["AvailableAdaptersModel", "LibraryTableModel"]
