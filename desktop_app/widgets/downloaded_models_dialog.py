"""Downloaded models: what the models fetched from the Hub take on disk, and removing one.

Models the Hub tab (or a Hub model id) downloads stay in the Hugging Face cache, gigabytes each. This
dialog lists them (hub.downloaded_models, read off the GUI thread), and removes one after asking,
in a job; the loaded model and the library's adapters are refused by the backend, nothing else is
touched. The cache is shared with other Hugging Face tools, which the question says.
"""
from __future__ import annotations

import time

from PySide6.QtCore import Signal
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTreeView,
    QVBoxLayout,
)

from adapters_backend.units import format_bytes

from .. import hub_access
from ..plain_text import message_box, plain_label
from ..transient_dialogs import open_once

HEADERS = ["Model", "Kind", "Size", "Last used"]


def when(seconds: float) -> str:
    """"today", "3 days ago" … for a time in epoch seconds."""
    days = int((time.time() - seconds) // 86400)
    return "today" if days <= 0 else "yesterday" if days == 1 else f"{days} days ago"


class DownloadedModelsDialog(QDialog):
    removed = Signal(str)                  # a repository id whose files are gone

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.setWindowTitle("Downloaded models")
        self.resize(720, 380)
        self.rows: list[dict] = []
        self.model = QStandardItemModel(0, len(HEADERS), self)
        self.model.setHorizontalHeaderLabels(HEADERS)
        self.view = QTreeView()
        self.view.setModel(self.model)
        self.view.setRootIsDecorated(False)
        self.view.setAccessibleName("Downloaded models")
        self.view.setEditTriggers(QTreeView.EditTrigger.NoEditTriggers)
        self.view.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.view.selectionModel().currentChanged.connect(self._update_buttons)
        self.summary = plain_label("Looking in the Hugging Face cache…")
        self.summary.setWordWrap(True)
        self.summary.setAccessibleName("Downloaded models summary")
        self.remove_button = QPushButton("Remove…")
        self.remove_button.setToolTip("Delete this model's downloaded files from the disk")
        self.remove_button.clicked.connect(self.ask_remove)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.remove_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Models downloaded from the Hugging Face Hub. Adapters are in the Library tab."))
        lay.addWidget(self.view, 1)
        lay.addWidget(self.summary)
        lay.addWidget(buttons)
        self.confirm: QMessageBox | None = None
        self.asked = self.removing = ""    # the repository the question is about; the one being removed
        self.job = None
        self.note = ""                     # what the last removal did, shown before the listing
        self.refresh()

    # ------------------------------------------------------------------ listing
    def refresh(self) -> None:
        self.remove_button.setEnabled(False)
        self.job = self.state.jobs.start(hub_access.downloaded_models)
        self.job.signals.result.connect(self._on_rows)
        self.job.signals.error.connect(self._on_failed)

    def _newest(self) -> bool:
        return self.job is not None and self.sender() is self.job.signals

    def _on_rows(self, rows: list[dict]) -> None:
        if not self._newest():
            return
        self.rows = rows
        self.model.removeRows(0, self.model.rowCount())
        for r in rows:
            items = [QStandardItem(r["repo_id"]), QStandardItem(r["kind"]), QStandardItem(format_bytes(r["size"])),
                     QStandardItem(when(r["last_used"]))]
            items[0].setToolTip("\n".join(r["models"]))
            self.model.appendRow(items)
        total = sum(r["size"] for r in rows)
        listing = (f"{len(rows)} model{'s' if len(rows) != 1 else ''}, {format_bytes(total)} on disk." if rows
                   else "No downloaded models.")
        self.summary.setText(f"{self.note} {listing}".strip())
        self._update_buttons()

    def _on_failed(self, exc) -> None:
        if self._newest():
            self.summary.setText(f"Could not read the Hugging Face cache: {exc}")

    def selected(self) -> dict | None:
        row = self.view.currentIndex().row()
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def _update_buttons(self, *_args) -> None:
        self.remove_button.setEnabled(self.selected() is not None)

    # ------------------------------------------------------------------ removing
    def ask_remove(self) -> None:
        row = self.selected()
        if row is None:
            return
        self.confirm = message_box(
            QMessageBox.Icon.Question, "Remove downloaded model",
            f"Delete the downloaded files of {row['repo_id']} ({format_bytes(row['size'])})?\n\nThey are in the "
            "Hugging Face cache, which other Hugging Face tools on this computer share: they would download "
            "it again if they need it.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        self.asked = row["repo_id"]
        self.confirm.accepted.connect(self._on_confirmed)
        open_once(self.confirm)

    def _on_confirmed(self) -> None:
        self.remove(self.asked)

    def in_use(self) -> list[str]:
        """Paths that must not go: the loaded (or loading) model and the library's adapters."""
        paths = [p for p in (self.state.loading_path, self.state.model.path if self.state.model else None) if p]
        return paths + [str(e.path) for e in self.state.library_model.entries()]

    def remove(self, repo_id: str) -> None:
        self.note = ""
        self.summary.setText(f"Removing {repo_id}…")
        self.remove_button.setEnabled(False)
        self.removing = repo_id            # one at a time: Remove… is off until the list is read again
        job = self.state.jobs.start(hub_access.remove_downloaded, repo_id, self.in_use())
        job.signals.result.connect(self._on_removed)
        job.signals.error.connect(self._on_remove_failed)

    def _on_removed(self, freed: int) -> None:
        self.note = f"Removed {self.removing}: {format_bytes(freed)} freed."
        self.removed.emit(self.removing)
        self.refresh()

    def _on_remove_failed(self, exc) -> None:
        self.summary.setText(f"Not removed: {exc}")
        self._update_buttons()
