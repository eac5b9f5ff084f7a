"""Convert an adapter to a llama.cpp LoRA GGUF (any supported format in), with progress and cancel."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from .. import tools_access as tools
from .job_dialog import JobDialog

OUTTYPES = ["f16", "f32", "bf16", "q8_0"]
MISFIT_MARK = " — does not fit the loaded model"


def fitting_first(state) -> list:
    """(library entry, fits the loaded model?) with the adapters that fit first (the dialogs' defaults),
    each group in library order."""
    pairs = [(e, e.id not in state.compat or state.compat[e.id].usable) for e in state.library_model.entries()]
    return [p for p in pairs if p[1]] + [p for p in pairs if not p[1]]


class ConvertDialog(JobDialog):
    def __init__(self, state, parent=None):
        super().__init__(state, "Convert adapter", "Convert", parent)
        self.setMinimumWidth(560)
        self.adapter = QComboBox()
        self.adapter.setAccessibleName("Adapter to convert")
        self.adapter.setEditable(False)
        for e, fits in fitting_first(state):
            self.adapter.addItem(f"{e.name} ({e.format or '?'})" + ("" if fits else MISFIT_MARK), str(e.path))
        self.adapter.setCurrentIndex(0 if self.adapter.count() else -1)
        browse = QPushButton("Other…")
        browse.setAccessibleName("Choose an adapter file")
        browse.clicked.connect(self._browse_adapter)
        row = QHBoxLayout()
        row.addWidget(self.adapter, 1)
        row.addWidget(browse)
        self.base = QLineEdit(state.model.path if state.model else "")
        self.base.setAccessibleName("Base model")
        self.base.setPlaceholderText("Base model (GGUF or HF folder); needed for Kohya names and checks")
        self.outtype = QComboBox()
        self.outtype.setAccessibleName("Output type")
        self.outtype.addItems(OUTTYPES)
        out_row = self.output_row("Save GGUF adapter", "GGUF (*.gguf)")
        self.add_to_library = QCheckBox("Add the result to the library")
        self.add_to_library.setChecked(True)
        form = QFormLayout()
        form.addRow("Adapter", row)
        form.addRow("Base model", self.base)
        form.addRow("Tensor type", self.outtype)
        form.addRow("Output", out_row)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.add_to_library)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.buttons)
        self.adapter.currentIndexChanged.connect(self._suggest_output)
        self._suggest_output()

    def _browse_adapter(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Adapter", str(Path.home()),
                                              "Adapters (*.safetensors *.gguf *.zip adapter_config.json)")
        if path:
            p = Path(path)
            p = p.parent if p.name == "adapter_config.json" else p
            self.adapter.addItem(p.name, str(p))
            self.adapter.setCurrentIndex(self.adapter.count() - 1)

    def _suggest_output(self, *_args) -> None:
        src = self.adapter.currentData()
        if src:
            p = Path(src)
            self.output.setText(str(p.parent / f"{p.stem if p.is_file() else p.name}.lora.gguf"))

    def job_call(self):
        src = self.adapter.currentData()
        out = self.output.text().strip()
        if not src:
            raise ValueError("Choose an adapter to convert.")
        if not out:
            raise ValueError("Choose where to save the GGUF file.")
        return tools.convert, (src, out, self.base.text().strip() or None, self.outtype.currentText(),
                               self.add_to_library.isChecked())

    def on_result(self, result) -> str:
        if self.add_to_library.isChecked():
            self.state.refresh_library()
        return f"Saved {result}."
