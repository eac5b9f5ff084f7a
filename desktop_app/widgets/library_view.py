"""Library view: every installed adapter (format, variant, rank, base model, size, source, licence),
search, rename, notes, remove, reveal in the file manager; details with the `inspect` report and the
adapter's anatomy heat map."""
from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from adapters_backend.units import format_bytes

from .. import library_access as lib
from ..file_manager import home_relative, open_folder
from ..models.library_model import LibraryFilterModel, LibraryTableModel
from ..plain_text import message_box, plain_label
from ..transient_dialogs import open_once
from .anatomy_view import AnatomyView

if TYPE_CHECKING:
    from adapters_backend.library import LibraryEntry

# How a verdict's status reads; the check's own summary begins with the same words.
VERDICT_WORDS = {"compatible": "compatible", "partial": "partially compatible", "incompatible": "incompatible",
                 "unknown": "not checked"}


class _SummaryScroll(QScrollArea):
    """As tall as the details it holds when there is room; scrolls (never overlaps) when there is not."""

    def sizeHint(self):
        w = self.widget()
        hint = super().sizeHint()
        if w is not None:
            width = self.viewport().width()
            h = w.heightForWidth(width) if w.hasHeightForWidth() and width > 0 else -1
            hint.setHeight((h if h > 0 else w.sizeHint().height()) + 2 * self.frameWidth())
        return hint

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if event.oldSize().width() != event.size().width():
            self.updateGeometry()         # wrapped rows take another height at another width


class LibraryView(QWidget):
    add_to_mix_requested = Signal(str)

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self._details_job = None
        self._current_id: str | None = None

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search adapters (name, format, base model, source…)")
        self.search.setClearButtonEnabled(True)
        self.search.setAccessibleName("Search the library")
        self.proxy = LibraryFilterModel(self)
        self.proxy.setSourceModel(state.library_model)
        self.search.textChanged.connect(self.proxy.setFilterFixedString)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setAccessibleName("Installed adapters")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        # The indicator first: enabling sorting sorts by it, once (a sortByColumn after it sorted the
        # library a second time: 75 ms of 230 for opening the tab with 1,000 adapters).
        self.table.horizontalHeader().setSortIndicator(0, Qt.SortOrder.AscendingOrder)
        self.table.setSortingEnabled(True)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for col, width in enumerate((170, 70, 70, 50, 200, 80, 120)):
            self.table.setColumnWidth(col, width)
        self.table.selectionModel().currentRowChanged.connect(self._on_table_current_changed)
        self.table.doubleClicked.connect(lambda _i: self._add_to_mix())

        self.install_button = self._button("Install…", "Install an adapter folder, .zip, .safetensors or .gguf",
                                           self.install_from_dialog)
        self.add_button = self._button("Add to mix", "Use this adapter in the chat", self._add_to_mix)
        self.rename_button = self._button("Rename…", "Give the adapter another name", self._rename)
        self.reveal_button = self._button("Show in folder", "Open the folder that holds the adapter", self._reveal)
        self.remove_button = self._button("Remove", "Remove the adapter from the library (Del)", self._remove)
        QShortcut(QKeySequence.StandardKey.Delete, self.table, self._remove)
        # Under the table what acts on the library; what acts on one adapter (Rename, Show in folder)
        # sits with its details: neither row is wider than its side at 1024 px.
        buttons = QHBoxLayout()
        for b in (self.install_button, self.add_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.remove_button)
        adapter_buttons = QHBoxLayout()
        adapter_buttons.addWidget(self.rename_button)
        adapter_buttons.addWidget(self.reveal_button)
        adapter_buttons.addStretch(1)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.search)
        ll.addWidget(self.table, 1)
        ll.addLayout(buttons)

        # Details pane.
        self.title = QLabel("<i>No adapter selected</i>")
        self.title.setWordWrap(True)
        self.summary = QFormLayout()
        self.summary_box = QWidget()
        self.summary_box.setLayout(self.summary)
        # Scrolls when the window is short (e.g. with the downloads panel open) instead of squeezing
        # its rows until the text overlaps.
        summary_scroll = _SummaryScroll()
        summary_scroll.setWidget(self.summary_box)
        summary_scroll.setWidgetResizable(True)
        summary_scroll.setFrameShape(QFrame.Shape.NoFrame)
        summary_scroll.setMinimumHeight(60)
        self.summary_scroll = summary_scroll
        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText("Your notes about this adapter")
        self.notes.setAccessibleName("Notes")
        self.notes.setMaximumHeight(70)
        self.save_notes_button = self._button("Save notes", "Keep these notes with the adapter", self._save_notes)
        self.anatomy = AnatomyView()
        anatomy_scroll = QScrollArea()
        anatomy_scroll.setWidget(self.anatomy)
        anatomy_scroll.setWidgetResizable(True)
        anatomy_scroll.setAccessibleName("Anatomy")
        self.report = QTextBrowser()
        self.report.setAccessibleName("Inspect report")
        self.report.setLineWrapMode(QTextBrowser.LineWrapMode.NoWrap)
        self.report.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))   # columns line up
        self.detail_tabs = QTabWidget()
        self.detail_tabs.addTab(anatomy_scroll, "Anatomy")
        self.detail_tabs.addTab(self.report, "Inspect report")
        self.detail_tabs.setMinimumHeight(170)        # a few layers of the heat map, whatever the window
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.title)
        rl.addLayout(adapter_buttons)
        rl.addWidget(summary_scroll)
        rl.addWidget(self.detail_tabs, 1)
        rl.addWidget(QLabel("Notes"))
        rl.addWidget(self.notes)
        rl.addWidget(self.save_notes_button, 0, Qt.AlignmentFlag.AlignRight)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        # Start with a details pane wide enough for the anatomy of a 7-module adapter (the stretch
        # factors alone leave it at its size hint, clipping the heat map); the user can drag it.
        split.setSizes([560, 480])
        split.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)

        state.compat_changed.connect(lambda: state.library_model.set_compat(state.compat))
        state.library_model.modelReset.connect(self._update_buttons)
        state.library_model.rowsRemoved.connect(self._on_rows_removed)
        state.library_model.dataChanged.connect(self._on_library_data_changed)
        self._update_buttons()

    def _button(self, text: str, tip: str, slot) -> QPushButton:
        b = QPushButton(text)
        b.setToolTip(tip)
        b.setAccessibleName(text.rstrip("…"))
        b.clicked.connect(slot)
        return b

    # -- selection --
    def current_entry(self) -> LibraryEntry | None:
        idx = self.table.currentIndex()
        if not idx.isValid():
            return None
        return self.proxy.data(idx, LibraryTableModel.EntryRole)

    def select_adapter(self, adapter_id: str) -> bool:
        row = self.state.library_model.row_of(adapter_id)
        if row < 0:
            return False
        idx = self.proxy.mapFromSource(self.state.library_model.index(row, 0))
        self.table.setCurrentIndex(idx)
        return True

    def _update_buttons(self, *_args) -> None:
        e = self.current_entry()
        for b in (self.add_button, self.rename_button, self.reveal_button, self.remove_button,
                  self.save_notes_button):
            b.setEnabled(e is not None)
        self.notes.setEnabled(e is not None)

    def _on_rows_removed(self, *_args) -> None:
        e = self.current_entry()
        if e is None or e.id != self._current_id:
            self._show_entry(e)

    def _on_library_data_changed(self, *_args) -> None:
        e = self.current_entry()
        if e is not None and e.id == self._current_id:
            self.title.setText(f"<b>{html.escape(e.name)}</b>")        # renamed, say
            self._fill_summary(e)

    def _on_table_current_changed(self, current, _previous) -> None:
        self._show_entry(self.current_entry())

    def _show_entry(self, e: LibraryEntry | None) -> None:
        self._update_buttons()
        self._current_id = e.id if e else None
        if self._details_job is not None and not self._details_job.done:
            self._details_job.cancel()
        if e is None:
            self.title.setText("<i>No adapter selected</i>")
            self._fill_summary(None)
            self.report.clear()
            self.anatomy.set_message("Select an adapter to see where it acts.")
            self.notes.clear()
            return
        self.title.setText(f"<b>{html.escape(e.name)}</b>")
        self._fill_summary(e)
        self.notes.setPlainText(e.notes)
        self.report.setPlainText("Reading…")
        self.anatomy.set_message("Computing update norms…")
        job = self.state.jobs.start(lib.inspect_with_anatomy, str(e.path))
        self._details_job = job
        job.signals.result.connect(lambda res, j=job, i=e.id: self._on_details(j, i, res))
        job.signals.error.connect(lambda exc, j=job: self._on_details_failed(j, exc))

    def _fill_summary(self, e: LibraryEntry | None) -> None:
        while self.summary.rowCount():
            self.summary.removeRow(0)
        if e is None:
            self.summary_scroll.updateGeometry()
            return
        verdict = self.state.compat.get(e.id)
        rows = [("Format", e.format), ("Variant", e.variant), ("Rank", e.rank), ("Alpha", e.alpha),
                ("Base model", e.base_model), ("Size", format_bytes(e.size)), ("Source", e.source),
                ("Licence", e.license), ("Installed", e.installed), ("Location", home_relative(e.path))]
        if verdict is not None and self.state.model is not None:
            text, reason = VERDICT_WORDS[verdict.status], verdict.reason
            if reason:      # the check's summary often starts with the same words: do not say them twice
                text = reason if reason.startswith(text) else f"{text} — {reason}"
            rows.append(("With this model", text))
        for label, value in rows:
            if value in (None, ""):
                continue
            v = plain_label(str(value))
            v.setWordWrap(True)
            v.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.summary.addRow(label, v)
        self.summary_scroll.updateGeometry()          # its height follows the rows it holds

    def _on_details(self, job, adapter_id: str, result) -> None:
        if job is not self._details_job or adapter_id != self._current_id:
            return
        report_text, anatomy = result
        self.report.setPlainText(report_text)
        self.anatomy.set_anatomy(anatomy)

    def _on_details_failed(self, job, exc) -> None:
        if job is not self._details_job:
            return
        self.report.setPlainText(str(exc))
        self.anatomy.set_message(f"Cannot read this adapter: {exc}")

    # -- actions --
    def install_from_dialog(self) -> None:
        dlg = QFileDialog(self, "Install an adapter", str(Path.home()),
                          "Adapters (*.safetensors *.gguf *.zip adapter_config.json);;All files (*)")
        dlg.setFileMode(QFileDialog.FileMode.ExistingFile)
        dlg.setOption(QFileDialog.Option.DontUseNativeDialog, False)
        if not dlg.exec():
            return
        for path in dlg.selectedFiles():
            p = Path(path)
            # Choosing adapter_config.json means "this folder".
            target = p.parent if p.name in ("adapter_config.json", "model_hyperparameters.json") else p
            self.window().drops.install(target) if hasattr(self.window(), "drops") else self.state.install(str(target))

    def _add_to_mix(self) -> None:
        e = self.current_entry()
        if e is not None:
            self.add_to_mix_requested.emit(e.id)

    def _rename(self) -> None:
        e = self.current_entry()
        if e is None:
            return
        name, ok = QInputDialog.getText(self, "Rename adapter", "New name:", text=e.name)
        if ok and name.strip() and name.strip() != e.name:
            self.state.rename_adapter(e.id, name.strip())

    def _save_notes(self) -> None:
        e = self.current_entry()
        if e is not None:
            self.state.set_notes(e.id, self.notes.toPlainText())

    def _reveal(self) -> None:
        e = self.current_entry()
        if e is None:
            return
        p = Path(e.path)
        folder = str(p if p.is_dir() else p.parent)
        job = self.state.jobs.start(open_folder, folder)
        job.signals.result.connect(lambda problem: problem and self._cannot_reveal(str(p), problem))
        job.signals.error.connect(lambda exc: self._cannot_reveal(str(p), str(exc)))
        self._reveal_job = job

    def _cannot_reveal(self, path: str, problem: str) -> None:
        """No file manager opened it: say why, show where the adapter is, offer to copy the path."""
        box = message_box(QMessageBox.Icon.Warning, "Cannot show the folder",
                          f"The folder could not be opened: {problem}.\n\nThe adapter is here:\n{path}",
                          QMessageBox.StandardButton.Close, self)
        copy = box.addButton("Copy path", QMessageBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(path))
        box.setAccessibleName("Cannot show the folder")
        self.reveal_box = open_once(box)

    def _remove(self) -> None:
        e = self.current_entry()
        if e is None:
            return
        box = message_box(QMessageBox.Icon.Question, "Remove adapter",
                          f"Remove “{e.name}” from the library?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setAccessibleName("Confirm removal")
        box.accepted.connect(lambda i=e.id: self.state.remove_adapter(i))
        self._confirm_box = open_once(box)

