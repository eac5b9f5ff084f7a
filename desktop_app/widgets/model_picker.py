"""Model picker (toolbar): demo model, recent models, open a GGUF file, an HF folder or an HF Hub id,
get a GGUF from the Hub; engine chosen by what the model is (.gguf → llama.cpp, folder or Hub id →
PyTorch), overridable; load progress; a failed load is said in the picker too (not only in a dialog).

Picking a model loads it at once, so the picker never shows one model while another answers; it
shows the loaded model (or none). Load loads the picked model again, e.g. with another engine, and is
highlighted, with "… not loaded", while the engine chosen differs from the loaded model's."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QProgressBar, QPushButton, QWidget

from adapters_backend.model_ref import engine_for, is_hub_id

from .. import library_access as lib
from ..plain_text import message_box, plain_label, plain_tip
from ..transient_dialogs import open_once
from ..workers.engine_host import TORCH_HINT, torch_available

if TYPE_CHECKING:
    from PySide6.QtWidgets import QInputDialog

ENGINES = [("Auto", None), ("llama.cpp", "llama.cpp"), ("PyTorch", "torch")]
OPEN_GGUF, OPEN_FOLDER, OPEN_HUB_ID, FROM_HUB = "::open-gguf", "::open-folder", "::open-hub-id", "::hub"
CONNECT = "::connect"
SERVER_KINDS = [("llama.cpp llama-server", "llama-server"), ("vLLM", "vllm"), ("LoRAX", "lorax")]


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
        self.load_button.setToolTip("Load the chosen model again (with the engine chosen beside it)")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(140)
        self.progress.setAccessibleName("Model loading progress")
        self.progress.hide()
        self.status = plain_label()
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
        self.engine_combo.currentIndexChanged.connect(self._show_pending)
        self.load_button.clicked.connect(self.load_current)
        state.model_loading.connect(self._on_state_model_loading)
        state.model_load_progressed.connect(self._on_state_model_load_progressed)
        state.model_changed.connect(self._on_state_model_changed)
        state.model_load_failed.connect(self._on_state_model_load_failed)
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
            if r["path"] not in seen and (Path(r["path"]).exists() or is_hub_id(r["path"])):
                self.combo.addItem(self._label(r["path"]), r["path"])
                self.combo.setItemData(self.combo.count() - 1, plain_tip(r["path"]), 3)   # tooltip role
                seen.add(r["path"])
        self.combo.insertSeparator(self.combo.count())
        self.combo.addItem("Open GGUF file…", OPEN_GGUF)
        has_torch = torch_available()
        suffix = "" if has_torch else " — needs PyTorch"
        self.combo.addItem(f"Open model folder (PyTorch{suffix})…", OPEN_FOLDER)
        self.combo.addItem(f"Open a Hub model id (PyTorch{suffix})…", OPEN_HUB_ID)
        if not has_torch:
            for key in (OPEN_FOLDER, OPEN_HUB_ID):
                self.combo.setItemData(self.combo.findData(key), TORCH_HINT, 3)    # tooltip role
        self.engine_combo.setItemText(2, "PyTorch" if has_torch else "PyTorch (not installed)")
        self.combo.addItem("Get a GGUF model from the Hub…", FROM_HUB)
        self.combo.addItem("Connect to a server (llama-server, vLLM, LoRAX)…", CONNECT)
        # The picker shows what is loaded (or being loaded), never a choice that is not.
        current = self.state.loading_path or (self.state.model.path if self.state.model else None)
        if current:
            i = self.combo.findData(current)
            if i < 0:
                self.combo.insertItem(0, self._label(current), current)
                i = 0
            self.combo.setCurrentIndex(i)
        else:
            self.combo.setCurrentIndex(-1)
            self.combo.setPlaceholderText("No model loaded")
        self.combo.blockSignals(False)
        self._show_pending()

    def _on_combo_activated(self, index: int) -> None:
        data = self.combo.itemData(index)
        if data == OPEN_GGUF:
            self.open_gguf()
        elif data == OPEN_FOLDER:
            self.open_folder()
        elif data == OPEN_HUB_ID:
            self.open_hub_id()
        elif data == FROM_HUB:
            self.refresh()
            self.hub_requested.emit()
        elif data == CONNECT:
            self.connect_server()
        elif data:
            loaded = self.state.model.path if self.state.model else None
            if str(data) != loaded or self.state.loading:       # picking a model loads it
                self.load_path(str(data))

    def connect_server(self):
        """Ask for a serving system's kind, address and key (non-blocking); connects when accepted."""
        from .server_dialog import ServerDialog
        dlg = ServerDialog(SERVER_KINDS, self)
        dlg.chosen.connect(lambda url, kind, key: self.state.load_model(url, kind, options={"api_key": key or None}))
        dlg.rejected.connect(self.refresh)
        self.server_dialog = open_once(dlg)
        return dlg

    def open_gguf(self) -> None:
        from PySide6.QtWidgets import QFileDialog  # only when shown
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", str(Path.home()),
                                              "GGUF models (*.gguf);;All files (*)")
        if path:
            self.load_path(path)
        else:
            self.refresh()

    def open_folder(self) -> None:
        from PySide6.QtWidgets import QFileDialog  # only when shown
        if not self._torch_ready():
            return
        path = QFileDialog.getExistingDirectory(self, "Open a Hugging Face model folder", str(Path.home()))
        if path:
            self.load_path(path)
        else:
            self.refresh()

    def open_hub_id(self) -> QInputDialog | None:
        """Ask for a Hub model id (non-blocking dialog); it loads on the PyTorch engine when accepted."""
        from PySide6.QtWidgets import QInputDialog  # only when shown
        if not self._torch_ready():
            return None
        dlg = QInputDialog(self)
        dlg.setWindowTitle("Open a Hub model")
        dlg.setLabelText("Hugging Face model id (runs on the PyTorch engine, downloaded into the HF cache):")
        dlg.setTextEchoMode(QLineEdit.EchoMode.Normal)
        dlg.setTextValue("")
        dlg.textValueSelected.connect(self._on_hub_id_chosen)
        dlg.rejected.connect(self.refresh)
        self.hub_id_dialog = open_once(dlg)
        return dlg

    def _on_hub_id_chosen(self, text: str) -> None:
        text = text.strip()
        if not is_hub_id(text):
            self.status.setText(f"'{text}' is not a Hub model id (owner/name)." if text else "No model id given.")
            self.refresh()
            return
        self.load_path(text)

    def _torch_ready(self) -> bool:
        """HF folders and Hub ids need PyTorch: say how to get it instead of failing after a file dialog."""
        from PySide6.QtWidgets import QMessageBox  # only when shown
        if torch_available():
            return True
        self.status.setText("PyTorch engine not installed")
        self.status.setToolTip(TORCH_HINT)
        box = message_box(QMessageBox.Icon.Information, "PyTorch engine not installed",
                          "Hugging Face model folders and Hub ids run on the PyTorch engine, which is not "
                          f"installed.\n\n{TORCH_HINT}\n\nthen restart LoRA Deck. GGUF models work without it.",
                          QMessageBox.StandardButton.Ok, self)
        box.setAccessibleName("PyTorch engine not installed")
        self.torch_box = open_once(box)
        self.refresh()
        return False

    @staticmethod
    def _label(path: str) -> str:
        return path if is_hub_id(path) else Path(path).name

    def selected_engine(self, path: str) -> str:
        kind = ENGINES[self.engine_combo.currentIndex()][1]
        return kind or engine_for(path)

    def load_path(self, path: str) -> None:
        self.state.load_model(path, self.selected_engine(path))

    def load_current(self) -> None:
        data = self.combo.currentData()
        if data and not str(data).startswith("::"):
            self.load_path(str(data))

    def pending(self) -> bool:
        """Whether the picked model/engine is not what is loaded (Load would change it)."""
        data = self.combo.currentData()
        m = self.state.model
        if self.state.loading or not data or str(data).startswith("::") or m is None:
            return False
        kind = ENGINES[self.engine_combo.currentIndex()][1]      # None: Auto, as the model was loaded
        return str(data) != m.path or (kind is not None and kind != m.engine)

    def _show_pending(self, *_args) -> None:
        pending = self.pending()
        font = self.load_button.font()
        if font.bold() != pending:
            font.setBold(pending)
            self.load_button.setFont(font)
        self.load_button.setToolTip("Load the model with the engine chosen: it is not loaded yet" if pending else
                                    "Load the chosen model again (with the engine chosen beside it)")
        m = self.state.model
        if pending:
            self.status.setText(f"{self.selected_engine(str(self.combo.currentData()))} chosen, not loaded")
        elif m is not None and not self.state.loading and self.status.text().endswith("not loaded"):
            self.status.setText(ready_text(m))

    def _on_state_model_loading(self, label: str) -> None:
        self.refresh()                     # shows the model being loaded, however the load was started
        self.progress.setRange(0, 0)
        self.progress.show()
        self.load_button.setEnabled(False)
        self.status.setText(f"Loading {label}…")

    def _on_state_model_load_progressed(self, done: float, total: float, msg: str) -> None:
        if msg and msg not in ("loading model", "ready"):   # a stage, or: the model did not fit the GPU
            self.status.setText(msg[0].upper() + msg[1:] + "…")
        if total > 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(1000 * done / total))

    def _on_state_model_changed(self) -> None:
        self.progress.hide()
        self.load_button.setEnabled(True)
        m = self.state.model
        if m or not self.status.text().startswith("Could not load"):
            self.status.setText(ready_text(m) if m else "No model loaded")
            self.status.setToolTip(plain_tip(m.path if m else ""))
        self.refresh()

    def _on_state_model_load_failed(self, label: str, reason: str) -> None:
        m = self.state.model          # the model loaded before, where the engine refused the file before closing it
        if m is not None:
            self.progress.hide()
            self.load_button.setEnabled(True)
            self.refresh()
        self.status.setText(f"Could not load {label}" + (" — PyTorch not installed" if "loradeck[torch]" in reason
                                                          else f"; {m.label} still loaded" if m else ""))
        self.status.setToolTip(plain_tip(reason))


def ready_text(m) -> str:
    """"llama.cpp · GPU · ready": the engine and, where it says, the device the loaded model runs on."""
    device = m.info.get("device")
    return f"{m.engine} · {device} · ready" if device else f"{m.engine} · ready"
