"""Connect to a model running on a serving system (llama-server, vLLM, LoRAX) instead of a local file."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout

from adapters_backend.model_ref import is_url

HINTS = {
    "llama-server": "Several adapters at any strength, per request — the ones the server was started with "
                    "(llama-server --lora FILE … --lora-init-without-apply).",
    "vllm": "One adapter per request, always at full strength (vLLM has no strength). New adapters load at run "
            "time when the server allows it (VLLM_ALLOW_RUNTIME_LORA_UPDATING=True).",
    "lorax": "One adapter at full strength, or several merged per request with weights.",
}


class ServerDialog(QDialog):
    chosen = Signal(str, str, str)          # url, engine kind, api key ("" = none)

    def __init__(self, kinds: list[tuple[str, str]], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Connect to a server")
        self.kind = QComboBox()
        self.kind.setAccessibleName("Server kind")
        for label, kind in kinds:
            self.kind.addItem(label, kind)
        self.url = QLineEdit()
        self.url.setAccessibleName("Server address")
        self.url.setPlaceholderText("http://127.0.0.1:8080")
        self.key = QLineEdit()
        self.key.setAccessibleName("API key")
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("only if the server needs one")
        self.hint = QLabel()
        self.hint.setWordWrap(True)
        self.error = QLabel()
        self.error.setStyleSheet("color: palette(highlight)")
        form = QFormLayout()
        form.addRow("Server", self.kind)
        form.addRow("Address", self.url)
        form.addRow("API key", self.key)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Connect")
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.hint)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.kind.currentIndexChanged.connect(self._show_hint)
        self._show_hint()

    def _show_hint(self, *_args) -> None:
        self.hint.setText(HINTS.get(self.kind.currentData(), ""))

    def _accept(self) -> None:
        url = self.url.text().strip().rstrip("/")
        if not is_url(url):
            self.error.setText("The address starts with http:// or https://, e.g. http://127.0.0.1:8080")
            return
        self.accept()
        self.chosen.emit(url, self.kind.currentData(), self.key.text().strip())
