"""Merge: blend several adapters into one adapter (weights per adapter), or merge a mix into the
base model, with progress and cancel. Starts from the mixer's current mix."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QVBoxLayout,
)

from adapters_backend.engines.base import STRENGTH_RANGE

from .. import tools_access as tools
from ..plain_text import plain_tip
from .convert_dialog import MISFIT_MARK, fitting_first
from .job_dialog import JobDialog


class MergeDialog(JobDialog):
    def __init__(self, state, parent=None):
        super().__init__(state, "Merge adapters", "Merge", parent)
        self.setMinimumWidth(600)
        self.blend = QRadioButton("Blend into one adapter")
        self.into_base = QRadioButton("Merge into the loaded base model (a new model file or folder)")
        self.blend.setChecked(True)
        self.blend.setToolTip("One PEFT adapter with the weighted sum of the chosen ones, checked against the loaded "
                              "model (DoRA adapters need it: their exact update depends on the base weights)")
        self.blend.toggled.connect(self._suggest_output)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Adapter", "Weight"])
        self.table.setAccessibleName("Adapters to merge")
        self.table.horizontalHeader().setStretchLastSection(False)
        self.table.setColumnWidth(0, 380)
        self.add_combo = QComboBox()
        self.add_combo.setAccessibleName("Adapter to add")
        for e, fits in fitting_first(state):
            self.add_combo.addItem(e.name, str(e.path))
            if not fits:
                self.add_combo.setItemData(self.add_combo.count() - 1, plain_tip(e.name + MISFIT_MARK),
                                           Qt.ItemDataRole.ToolTipRole)
        add = QPushButton("Add")
        add.setAccessibleName("Add adapter")
        add.clicked.connect(lambda: self._add_row(self.add_combo.currentText(), self.add_combo.currentData(), 1.0))
        remove = QPushButton("Remove")
        remove.clicked.connect(lambda: self.table.removeRow(self.table.currentRow()))
        add_row = QHBoxLayout()
        add_row.addWidget(self.add_combo, 1)
        add_row.addWidget(add)
        add_row.addWidget(remove)
        self.method = QComboBox()
        self.method.setAccessibleName("Blend method")
        self.method.addItems(tools.blend_methods())
        out_row = self.output_row("Save", "GGUF (*.gguf);;All files (*)")
        form = QFormLayout()
        form.addRow("Method", self.method)
        form.addRow("Output", out_row)
        lay = QVBoxLayout(self)
        lay.addWidget(self.blend)
        lay.addWidget(self.into_base)
        lay.addWidget(self.table, 1)
        lay.addLayout(add_row)
        lay.addLayout(form)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        for e in state.mix_model.entries():
            if state.mix_model.is_on(e):             # switched on and fitting the loaded model
                self._add_row(e.name, e.path, e.strength)
        self.into_base.setEnabled(state.model is not None)
        self._suggest_output()

    def _add_row(self, name: str, path: str | None, weight: float) -> None:
        if not path:
            return
        r = self.table.rowCount()
        self.table.insertRow(r)
        from PySide6.QtWidgets import QTableWidgetItem
        item = QTableWidgetItem(name)
        item.setToolTip(plain_tip(path))
        item.setData(256, path)
        self.table.setItem(r, 0, item)
        w = QDoubleSpinBox()
        w.setRange(*STRENGTH_RANGE)
        w.setSingleStep(0.05)
        w.setValue(weight)
        w.setAccessibleName(f"Weight of {name}")
        self.table.setCellWidget(r, 1, w)

    def entries(self) -> list[tuple[str, float]]:
        return [(self.table.item(r, 0).data(256), self.table.cellWidget(r, 1).value())
                for r in range(self.table.rowCount())]

    def _suggest_output(self, *_args) -> None:
        from adapters_backend.paths import data_dir
        folder = data_dir() / "merged"
        name = "blend" if self.blend.isChecked() else "merged-model.gguf"   # a blend is a PEFT folder
        if self.into_base.isChecked() and self.state.model:
            base = Path(self.state.model.path)
            # GGUF base → GGUF file; HF folder base → HF folder (what tools.merge_into_base writes).
            name = f"{base.stem}-merged.gguf" if base.suffix.lower() == ".gguf" else f"{base.name}-merged"
        self.output.setText(str(folder / name))

    def job_call(self):
        entries = self.entries()
        out = self.output.text().strip()
        if not entries:
            raise ValueError("Add at least one adapter.")
        if not out:
            raise ValueError("Choose where to save the result.")
        if self.blend.isChecked():
            if len(entries) < 2:
                raise ValueError("Blending needs at least two adapters.")
            model = self.state.model
            base = model.path if model is not None and Path(model.path).exists() else None   # a local model
            return tools.blend, (entries, out, self.method.currentText(), base)
        if self.state.model is None:
            raise ValueError("Load the base model to merge into first.")
        return tools.merge_into_base, (self.state.model.path, entries, out)

    def on_result(self, result) -> str:
        if self.blend.isChecked():
            self.state.refresh_library()
            return f"Saved {result} and added it to the library."
        how = "File → Open GGUF model" if str(result).lower().endswith(".gguf") else "File → Open model folder"
        return f"Saved {result}. Load it from {how}."
