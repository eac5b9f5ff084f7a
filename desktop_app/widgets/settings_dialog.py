"""Settings: data folder, Hugging Face token, light or dark (or as the system), engine threads / GPU
layers / context, switching mixes (memory for KV snapshots of recent mixes, pre-warm), the web pages
allowed to use the local API server, default sampling."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from adapters_backend.paths import data_dir

from .. import hub_access as hub
from .. import theme
from ..file_manager import home_relative
from ..plain_text import plain_label
from .sampling_panel import SamplingPanel


class SettingsDialog(QDialog):
    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        s = state.settings
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)

        self.data_folder = QLineEdit(home_relative(s.get("paths/data_dir", "") or data_dir()))
        self.data_folder.setAccessibleName("Data folder")
        self._data_folder_shown = self.data_folder.text()
        self.data_folder_error = plain_label()
        self.data_folder_error.setWordWrap(True)
        self.data_folder_error.hide()                      # shown with a message only
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.data_folder, 1)
        folder_row.addWidget(browse)

        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("hf_… (leave empty to keep the current one)")
        self.token.setAccessibleName("Hugging Face token")
        self.token_status = plain_label(hub.token_status())
        self.token_status.setWordWrap(True)

        self.theme = QComboBox()
        self.theme.setAccessibleName("Theme")
        for key, label in theme.THEMES.items():
            self.theme.addItem(label, key)
        self.theme.setCurrentIndex(max(0, self.theme.findData(s.theme)))
        self.theme.setToolTip("Light or dark; “Same as the system” follows your desktop's setting")

        self.threads = QSpinBox()
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText("automatic")
        self.threads.setValue(s.n_threads)
        self.threads.setAccessibleName("CPU threads")
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setRange(-1, 1000)
        self.gpu_layers.setSpecialValueText("automatic")
        self.gpu_layers.setValue(s.n_gpu_layers)
        self.gpu_layers.setAccessibleName("GPU layers")
        self.gpu_layers.setToolTip("Layers of a GGUF model on the GPU. Automatic: every layer that fits its memory, "
                                   "none when llama.cpp was built without GPU support; 0 = CPU only")
        self.n_ctx = QSpinBox()
        self.n_ctx.setRange(256, 1_048_576)
        self.n_ctx.setSingleStep(1024)
        self.n_ctx.setValue(s.n_ctx)
        self.n_ctx.setAccessibleName("Context length")

        self.origins = QLineEdit(" ".join(s.server_origins))
        self.origins.setAccessibleName("Web pages allowed to use the local API server")
        self.origins.setPlaceholderText("none (e.g. http://localhost:3000)")
        self.origins.setToolTip("Origins of web pages (scheme://host:port) that may call the local API server from "
                                "a browser; separate several with spaces. Leave empty unless a web front-end needs "
                                "it: any page you visit could otherwise use your model.")
        self.origins_error = plain_label()
        self.origins_error.setWordWrap(True)
        self.origins_error.hide()                          # shown with a message only
        self.kv_memory = QSpinBox()
        self.kv_memory.setRange(-1, 1 << 20)
        self.kv_memory.setSingleStep(256)
        self.kv_memory.setSuffix(" MiB")
        self.kv_memory.setSpecialValueText("automatic")
        self.kv_memory.setValue(s.kv_snapshot_mib)
        self.kv_memory.setAccessibleName("Memory for recent mixes")
        self.kv_memory.setToolTip("Keeps what the model read of a conversation under each recent mix, so going back "
                                  "to a mix answers at once. Automatic: room for four full contexts of the model, "
                                  "at most 1 GiB and at most half of the memory the model leaves. 0 keeps none.")
        self.kv_held = QLabel()
        self._show_kv_held()
        self.kv_held.setWordWrap(True)
        self.kv_held.setAccessibleName("Memory for recent mixes in use")
        state.kv_stats_changed.connect(self._show_kv_held)       # a method: Qt disconnects it when the dialog goes
        self.prewarm = QCheckBox("Read the conversation under a new mix once the sliders rest")
        self.prewarm.setChecked(s.prewarm)
        self.prewarm.setAccessibleName("Pre-warm")
        self.prewarm.setToolTip("In the background, 0.3 s after the last change; never while an answer is written")

        general = QGroupBox("General")
        f1 = QFormLayout(general)
        f1.addRow("Data folder", folder_row)
        f1.addRow("", self.data_folder_error)
        f1.addRow("", QLabel("Library, conversations and presets live here (applies after a restart)."))
        f1.addRow("Hugging Face token", self.token)
        f1.addRow("", self.token_status)
        f1.addRow("Theme", self.theme)
        engine = QGroupBox("Engine (applies to the next model load)")
        f2 = QFormLayout(engine)
        f2.addRow("CPU threads", self.threads)
        f2.addRow("GPU layers", self.gpu_layers)
        f2.addRow("Context length", self.n_ctx)
        server = QGroupBox("Local API server (applies when it next starts)")
        f3 = QFormLayout(server)
        f3.addRow("Allowed web pages", self.origins)
        f3.addRow("", self.origins_error)
        switching = QGroupBox("Switching mixes")
        f4 = QFormLayout(switching)
        f4.addRow("Memory for recent mixes", self.kv_memory)
        f4.addRow("", self.kv_held)
        f4.addRow("", self.prewarm)
        self.sampling = SamplingPanel(s.default_sampling(), "Default sampling")   # folded: the dialog fits 700 px

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(general)
        lay.addWidget(engine)
        lay.addWidget(server)
        lay.addWidget(switching)
        lay.addWidget(self.sampling)
        lay.addWidget(buttons)
        # Qt sizes a dialog below its hint when wrapped labels are in it, clipping them: take the hint.
        self.resize(self.sizeHint())

    def _show_kv_held(self) -> None:
        model = self.state.model
        keeps = model is not None and model.capabilities is not None and model.capabilities.kv_snapshots
        self.kv_held.setText(kv_store_text(self.state.kv_stats, keeps, self.state.settings.kv_snapshot_mib))

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Data folder", str(Path(self.data_folder.text()).expanduser()))
        if path:
            self.data_folder.setText(path)

    def _origins(self) -> list[str] | None:
        """The allowed origins as typed, normalized; None (and the reason shown) when one is malformed."""
        items = self.origins.text().replace(",", " ").split()
        if not items:
            return []
        from adapters_backend.errors import BackendError
        from adapters_backend.serve.guard import normalize_origin  # loads the server stack
        try:
            return [normalize_origin(o) for o in items]
        except BackendError as exc:
            self.origins_error.setText(str(exc).replace("--allow-origin ", ""))
            self.origins_error.show()
            return None

    def _usable(self, folder: str) -> bool:
        """A newly chosen data folder is made and written to now, not found unusable at the next start."""
        from adapters_backend.disk_space import WriteFailed, check_usable_folder
        try:
            check_usable_folder(folder)
        except WriteFailed as exc:
            self.data_folder_error.setText(f"This folder cannot be used: {exc.problem}.")
            self.data_folder_error.show()
            return False
        self.data_folder_error.hide()
        return True

    def accept(self) -> None:
        s = self.state.settings
        origins = self._origins()
        if origins is None:
            return
        folder = self.data_folder.text().strip()
        folder = str(Path(folder).expanduser()) if folder else ""
        if folder and self.data_folder.text() != self._data_folder_shown and not self._usable(folder):
            return
        s.set_server_origins(origins)
        s.set("paths/data_dir", "" if folder == str(data_dir()) else folder)
        s.set("engine/n_threads", self.threads.value())
        s.set("engine/n_gpu_layers", self.gpu_layers.value())
        s.set("engine/n_ctx", self.n_ctx.value())
        s.set("appearance/theme", self.theme.currentData())
        theme.apply(QApplication.instance(), self.theme.currentData())
        budget_changed = self.kv_memory.value() != s.kv_snapshot_mib
        s.set("engine/kv_snapshot_mib", self.kv_memory.value())
        s.set("engine/prewarm", self.prewarm.isChecked())
        if budget_changed:
            self.state.apply_kv_budget()
        s.set_default_sampling(self.sampling.params())
        token = self.token.text().strip()
        if token:
            try:
                hub.set_token(token)
            except Exception as exc:  # shown to the user, dialog stays open
                self.token_status.setText(f"Could not save the token: {exc}")
                return
        s.sync()
        super().accept()


def kv_store_text(stats: dict | None, can_keep: bool = False, setting_mib: int = -1) -> str:
    """"Holds 3 mixes (412 of 1,024 MiB) covering 4,210 tokens" for the loaded model's snapshot store
    (`can_keep`: a model is loaded on an engine that keeps snapshots; `setting_mib`: -1 automatic)."""
    if not stats and can_keep and setting_mib < 0:
        return ("Keeps none: the loaded model leaves too little of this computer's memory (or its GPU's) for "
                "them. A smaller model or a shorter context leaves room.")
    if not stats and can_keep and setting_mib == 0:
        return "Keeps none: going back to a mix reads the conversation again."
    if not stats:
        return "Load a llama.cpp or PyTorch model to see what is kept."
    mib = 2 ** 20
    kinds = "snapshot" if stats["entries"] == 1 else "snapshots"
    return (f"Holds {stats['entries']} {kinds} ({stats['nbytes'] / mib:,.0f} of {stats['budget'] / mib:,.0f} MiB) "
            f"covering {stats['tokens']:,} tokens; {stats['hits']:,} answers started from one.")
