"""Settings: data folder, Hugging Face token, engine threads / GPU layers / context, switching mixes
(memory for KV snapshots of recent mixes, pre-warm), default sampling."""
from __future__ import annotations

from adapters_backend.paths import data_dir
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QVBoxLayout)

from .. import hub_access as hub
from .sampling_panel import SamplingPanel


class SettingsDialog(QDialog):
    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        s = state.settings
        self.setWindowTitle("Settings")
        self.setMinimumWidth(520)

        self.data_folder = QLineEdit(s.get("paths/data_dir", "") or str(data_dir()))
        self.data_folder.setAccessibleName("Data folder")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.data_folder, 1)
        folder_row.addWidget(browse)

        self.token = QLineEdit()
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("hf_… (leave empty to keep the current one)")
        self.token.setAccessibleName("Hugging Face token")
        self.token_status = QLabel(hub.token_status())
        self.token_status.setWordWrap(True)

        self.threads = QSpinBox()
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText("automatic")
        self.threads.setValue(s.n_threads)
        self.threads.setAccessibleName("CPU threads")
        self.gpu_layers = QSpinBox()
        self.gpu_layers.setRange(-1, 1000)
        self.gpu_layers.setSpecialValueText("all")
        self.gpu_layers.setValue(s.n_gpu_layers)
        self.gpu_layers.setAccessibleName("GPU layers")
        self.gpu_layers.setToolTip("Layers to offload to the GPU (0 = CPU only, all = every layer); "
                                   "needs a GPU build of llama.cpp")
        self.n_ctx = QSpinBox()
        self.n_ctx.setRange(256, 1_048_576)
        self.n_ctx.setSingleStep(1024)
        self.n_ctx.setValue(s.n_ctx)
        self.n_ctx.setAccessibleName("Context length")

        self.kv_memory = QSpinBox()
        self.kv_memory.setRange(-1, 1 << 20)
        self.kv_memory.setSingleStep(256)
        self.kv_memory.setSuffix(" MiB")
        self.kv_memory.setSpecialValueText("automatic")
        self.kv_memory.setValue(s.kv_snapshot_mib)
        self.kv_memory.setAccessibleName("Memory for recent mixes")
        self.kv_memory.setToolTip("Keeps what the model read of a conversation under each recent mix, so going back "
                                  "to a mix answers at once. Automatic: room for four full contexts of the model, "
                                  "at most 1 GiB. 0 keeps none.")
        self.kv_held = QLabel(kv_store_text(state.kv_stats))
        self.kv_held.setWordWrap(True)
        self.kv_held.setAccessibleName("Memory for recent mixes in use")
        state.kv_stats_changed.connect(lambda: self.kv_held.setText(kv_store_text(state.kv_stats)))
        self.prewarm = QCheckBox("Read the conversation under a new mix once the sliders rest")
        self.prewarm.setChecked(s.prewarm)
        self.prewarm.setAccessibleName("Pre-warm")
        self.prewarm.setToolTip("In the background, 0.3 s after the last change; never while an answer is written")

        general = QGroupBox("General")
        f1 = QFormLayout(general)
        f1.addRow("Data folder", folder_row)
        f1.addRow("", QLabel("Library, conversations and presets live here (applies after a restart)."))
        f1.addRow("Hugging Face token", self.token)
        f1.addRow("", self.token_status)
        engine = QGroupBox("Engine (applies to the next model load)")
        f2 = QFormLayout(engine)
        f2.addRow("CPU threads", self.threads)
        f2.addRow("GPU layers", self.gpu_layers)
        f2.addRow("Context length", self.n_ctx)
        switching = QGroupBox("Switching mixes")
        f3 = QFormLayout(switching)
        f3.addRow("Memory for recent mixes", self.kv_memory)
        f3.addRow("", self.kv_held)
        f3.addRow("", self.prewarm)
        self.sampling = SamplingPanel(s.default_sampling(), "Default sampling", collapsed=False)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(general)
        lay.addWidget(engine)
        lay.addWidget(switching)
        lay.addWidget(self.sampling)
        lay.addWidget(buttons)

    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Data folder", self.data_folder.text())
        if path:
            self.data_folder.setText(path)

    def accept(self) -> None:
        s = self.state.settings
        folder = self.data_folder.text().strip()
        s.set("paths/data_dir", "" if folder == str(data_dir()) else folder)
        s.set("engine/n_threads", self.threads.value())
        s.set("engine/n_gpu_layers", self.gpu_layers.value())
        s.set("engine/n_ctx", self.n_ctx.value())
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
            except Exception as exc:  # noqa: BLE001 - shown to the user, dialog stays open
                self.token_status.setText(f"Could not save the token: {exc}")
                return
        s.sync()
        super().accept()


def kv_store_text(stats: dict | None) -> str:
    """"Holds 3 mixes (412 of 1,024 MiB) covering 4,210 tokens" for the loaded model's snapshot store."""
    if not stats:
        return "Load a llama.cpp model to see what is kept."
    mib = 2 ** 20
    kinds = "snapshot" if stats["entries"] == 1 else "snapshots"
    return (f"Holds {stats['entries']} {kinds} ({stats['nbytes'] / mib:,.0f} of {stats['budget'] / mib:,.0f} MiB) "
            f"covering {stats['tokens']:,} tokens; {stats['hits']:,} answers started from one.")
