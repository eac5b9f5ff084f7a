"""Plugins dialog: every installed plugin, what it adds (formats, architectures), its version, and
the errors of broken ones. Discovery runs off the GUI thread."""
from __future__ import annotations

from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTreeView,
    QVBoxLayout,
)

from ..plain_text import plain_label, plain_tip

HEADERS = ["Plugin", "Status", "Distribution", "Adds"]


def plugin_rows(reload: bool = False, ctx=None) -> list[dict]:
    """Discover plugins and resolve their code, so plugins that break on use show their errors too."""
    from adapters_backend.plugins.manager import default_registry, reset_default_registry
    if reload:
        reset_default_registry()
    # Also lists the errors plugins met earlier in this session (a reader that raised on a file).
    return [p.as_dict() for p in default_registry().check()]


class PluginsDialog(QDialog):
    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.setWindowTitle("Plugins")
        self.resize(760, 420)
        self.rows: list[dict] = []
        self.model = QStandardItemModel(0, len(HEADERS), self)
        self.model.setHorizontalHeaderLabels(HEADERS)
        self.view = QTreeView()
        self.view.setModel(self.model)
        self.view.setAccessibleName("Installed plugins")
        self.view.setAlternatingRowColors(True)
        self.view.setEditTriggers(QTreeView.EditTrigger.NoEditTriggers)
        self.view.header().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.view.header().setStretchLastSection(True)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setAccessibleName("Plugin details")
        self.details.setMaximumHeight(110)
        self.details.setPlaceholderText("Select a plugin to see everything about it.")
        self.view.selectionModel().currentChanged.connect(self._on_view_current_changed)
        self.summary = plain_label("Looking for plugins…")
        self.summary.setWordWrap(True)
        self.summary.setAccessibleName("Plugins summary")
        reload_button = QPushButton("Reload")
        reload_button.setToolTip("Look for plugins again (after installing one)")
        reload_button.clicked.connect(lambda: self.refresh(reload=True))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(reload_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel("Plugins add adapter formats and model architectures. A broken plugin is "
                             "skipped; the rest keep working."))
        lay.addWidget(self.view, 1)
        lay.addWidget(self.details)
        lay.addWidget(self.summary)
        lay.addWidget(buttons)
        self.job = None
        self.refresh()

    def refresh(self, reload: bool = False) -> None:
        self.summary.setText("Looking for plugins…")
        job = self.state.jobs.start(plugin_rows, reload)
        self.job = job
        # Methods, not lambdas: Qt disconnects them when the dialog is closed (and deleted) first.
        job.signals.result.connect(self._on_rows)
        job.signals.error.connect(self._on_discovery_failed)

    def _newest(self) -> bool:
        """Whether the job that signals is the newest discovery ("Reload" while one runs: only the newest
        one's rows are shown, whatever order they finish in)."""
        return self.job is not None and self.sender() is self.job.signals

    def _on_rows(self, rows: list[dict]) -> None:
        if self._newest():
            self._show(rows)

    def _on_discovery_failed(self, exc) -> None:
        if self._newest():
            self.summary.setText(f"Plugin discovery failed: {exc}")

    def _show(self, rows: list[dict]) -> None:
        self.rows = rows
        self.model.removeRows(0, self.model.rowCount())
        for r in rows:
            adds = []
            if r["formats"]:
                adds.append("formats: " + ", ".join(r["formats"]))
            if r["architectures"]:
                adds.append("architectures: " + ", ".join(r["architectures"]))
            dist = f"{r['distribution'] or '?'} {r['version'] or ''}".strip()
            items = [QStandardItem(r["title"] or r["name"]), QStandardItem("OK" if r["ok"] else "Broken"),
                     QStandardItem(dist), QStandardItem("; ".join(adds) or "—")]
            items[0].setToolTip(plain_tip(f"{r['name']} = {r['target']}"))
            for e in r["errors"]:
                child = QStandardItem(f"error: {e}")
                child.setToolTip(plain_tip(e))
                items[0].appendRow([child])
            self.model.appendRow(items)
        for row in range(self.model.rowCount()):
            parent = self.model.index(row, 0)
            for c in range(self.model.rowCount(parent)):
                self.view.setFirstColumnSpanned(c, parent, True)
        self.view.expandAll()
        broken = [r for r in rows if not r["ok"]]
        self.summary.setText(f"{len(rows)} plugin(s); " + (f"{len(broken)} broken: "
                             + ", ".join(r["name"] for r in broken) if broken else "all working."))

    def _on_view_current_changed(self, current, _previous) -> None:
        idx = current.parent() if current.parent().isValid() else current
        if not idx.isValid() or idx.row() >= len(self.rows):
            self.details.clear()
            return
        r = self.rows[idx.row()]
        lines = [f"{r['title'] or r['name']}  ({r['name']} = {r['target']})",
                 f"Distribution: {r['distribution'] or '?'} {r['version'] or ''}",
                 f"Formats: {', '.join(r['formats']) or '—'}",
                 f"Architectures: {', '.join(r['architectures']) or '—'}"]
        lines += [f"Error: {e}" for e in r["errors"]]
        self.details.setPlainText("\n".join(lines))

    def error_texts(self) -> list[str]:
        return [e for r in self.rows for e in r["errors"]]
