"""Per-layer strength: factors for layer ranges, applied on top of the adapter's strength
(block weights in image-LoRA tools, the "alpha vector" in Qualcomm's LoRA docs)."""
from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QVBoxLayout,
)


class LayerStrengthDialog(QDialog):
    def __init__(self, adapter_name: str, ranges: list, n_layers: int | None, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Per-layer strength — {adapter_name}")
        self.n_layers = n_layers or 64
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["First layer", "Last layer", "Factor"])
        self.table.setAccessibleName("Layer ranges")
        self.table.horizontalHeader().setStretchLastSection(True)
        for a, b, f in ranges:
            self._add(a, b, f)
        add = QPushButton("Add range")
        add.clicked.connect(lambda: self._add(0, self.n_layers - 1, 1.0))
        remove = QPushButton("Remove range")
        remove.clicked.connect(self._remove)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(f"Layers not in any range keep factor 1. The model has {self.n_layers} layers "
                             "(0 is nearest the input)." if n_layers else
                             "Layers not in any range keep factor 1."))
        lay.addWidget(self.table)
        lay.addLayout(row)
        lay.addWidget(buttons)
        self.resize(420, 300)

    def _add(self, a: int, b: int, f: float) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        first, last = QSpinBox(), QSpinBox()
        for w, v in ((first, a), (last, b)):
            w.setRange(0, max(0, self.n_layers - 1))
            w.setValue(int(v))
        factor = QDoubleSpinBox()
        factor.setRange(-2.0, 2.0)
        factor.setSingleStep(0.1)
        factor.setValue(float(f))
        self.table.setCellWidget(r, 0, first)
        self.table.setCellWidget(r, 1, last)
        self.table.setCellWidget(r, 2, factor)

    def _remove(self) -> None:
        r = self.table.currentRow()
        if r >= 0:
            self.table.removeRow(r)

    def ranges(self) -> list[tuple[int, int, float]]:
        out = []
        for r in range(self.table.rowCount()):
            a = self.table.cellWidget(r, 0).value()
            b = self.table.cellWidget(r, 1).value()
            f = self.table.cellWidget(r, 2).value()
            out.append((min(a, b), max(a, b), round(f, 4)))
        return out
