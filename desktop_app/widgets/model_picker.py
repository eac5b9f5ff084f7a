"""Model picker (toolbar): demo model, recent models, open a GGUF file or an HF folder, get one from
the Hub; engine chosen by file type, overridable; load progress."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget)

from .. import library_access as lib
from ..app_state import engine_for

ENGINES = [("Auto", None), ("llama.cpp", "llama.cpp"), ("PyTorch", "torch")]
OPEN_GGUF, OPEN_FOLDER, FROM_HUB = "::open-gguf", "::open-folder", "::hub"


class ModelPicker(QWidget):
    hub_requested = Signal()

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.combo = QComboBox()
        self.combo.setAccessibleName("Model")
        self.combo.setToolTip("Which model to chat with")
        self.combo.setMinimumContentsLength(24)
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.engine_combo = QComboBox()
        self.engine_combo.setAccessibleName("Engine")
        self.engine_combo.setToolTip("Engine (Auto: llama.cpp for .gguf files, PyTorch for model folders)")
        for label, _kind in ENGINES:
            self.engine_combo.addItem(label)
        self.load_button = QPushButton("Load")
        self.load_button.setAccessibleName("Load model")
        self.load_button.setToolTip("Load the chosen model")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(140)
        self.progress.setAccessibleName("Model loading progress")
        self.progress.hide()
        self.status = QLabel()
        self.status.setAccessibleName("Model status")

        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 2, 4, 2)
        lay.addWidget(QLabel("Model:"))
        lay.addWidget(self.combo, 1)
        lay.addWidget(self.engine_combo)
        lay.addWidget(self.load_button)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)

        self.combo.activated.connect(self._on_combo_activated)
        self.load_button.clicked.connect(self.load_current)
        state.model_loading.connect(self._on_state_model_loading)
        state.model_load_progressed.connect(self._on_state_model_load_progressed)
        state.model_changed.connect(self._on_state_model_changed)
        state.library_changed.connect(self.refresh)     # the list is filled once start-up has run
        self.combo.setPlaceholderText("Starting…")

    def refresh(self) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        demo = lib.demo_model()
        seen = set()
        if demo is not None:
            self.combo.addItem("Demo model (tiny, built in)", str(demo))
            seen.add(str(demo))
        for r in self.state.settings.recent_models():
            if r["path"] not in seen and Path(r["path"]).exists():
                self.combo.addItem(Path(r["path"]).name, r["path"])
                self.combo.setItemData(self.combo.count() - 1, r["path"], 3)   # tooltip role
                seen.add(r["path"])
        self.combo.insertSeparator(self.combo.count())
        self.combo.addItem("Open GGUF file…", OPEN_GGUF)
        self.combo.addItem("Open model folder (PyTorch)…", OPEN_FOLDER)
        self.combo.addItem("Get a model from the Hub…", FROM_HUB)
        current = self.state.model["path"] if self.state.model else None
        if current:
            i = self.combo.findData(current)
            if i < 0:
                self.combo.insertItem(0, Path(current).name, current)
                i = 0
            self.combo.setCurrentIndex(i)
        self.combo.blockSignals(False)

    def _on_combo_activated(self, index: int) -> None:
        data = self.combo.itemData(index)
        if data == OPEN_GGUF:
            self.open_gguf()
        elif data == OPEN_FOLDER:
            self.open_folder()
        elif data == FROM_HUB:
            self.refresh()
            self.hub_requested.emit()

    def open_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", str(Path.home()),
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.load_path(path)
        else:
            self.refresh()

    def open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a Hugging Face model folder", str(Path.home()))
        if path:
            self.load_path(path)
        else:
            self.refresh()

    def selected_engine(self, path: str) -> str:
        kind = ENGINES[self.engine_combo.currentIndex()][1]
        return kind or engine_for(path)

    def load_path(self, path: str) -> None:
        self.state.load_model(path, self.selected_engine(path))

    def load_current(self) -> None:
        data = self.combo.currentData()
        if data and not str(data).startswith("::"):
            self.load_path(str(data))

    def _on_state_model_loading(self, label: str) -> None:
        self.progress.setRange(0, 0)
        self.progress.show()
        self.load_button.setEnabled(False)
        self.status.setText(f"Loading {label}…")

    def _on_state_model_load_progressed(self, done: float, total: float, _msg: str) -> None:
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))

    def _on_state_model_changed(self) -> None:
        self.progress.hide()
        self.load_button.setEnabled(True)
        m = self.state.model
        self.status.setText(f"{m['engine']} · ready" if m else "No model loaded")
        self.refresh()
