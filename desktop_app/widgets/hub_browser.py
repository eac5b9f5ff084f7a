"""Hub browser: search adapters (defaulting to those for the loaded base model) or GGUF models;
details with the compatibility verdict before download; downloads with progress, cancel and resume
in the downloads panel; installed adapters appear in the library at once."""
from __future__ import annotations

import html
import time

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from adapters_backend.model_ref import is_hub_id
from adapters_backend.units import format_bytes

from .. import hub_access as hub
from ..models.hub_model import HubResultsModel
from ..plain_text import plain_label

FORMATS = [("Any format", None), ("PEFT", "peft"), ("GGUF LoRA", "gguf"), ("Kohya / LyCORIS", "kohya"),
           ("Ludwig", "ludwig")]
SORTS = [("Most downloaded", "downloads"), ("Most liked", "likes"), ("Recently updated", "updated")]
PAGE = 30
VERDICT_HEADS = {"compatible": "✔ Fits the loaded model.", "partial": "✔ Partly fits the loaded model.",
                 "incompatible": "✘ Does not fit the loaded model.", "unknown": "? Might fit the loaded model."}


class HubBrowser(QWidget):
    def __init__(self, state, activities, parent=None):
        super().__init__(parent)
        self.state = state
        self.activities = activities
        self._search_job = None
        self._details_job = None
        self._page = 0
        self._details: dict | None = None
        self._base_job = None
        self._auto_base = ""                  # the base id we filled in (replaced when the model changes)

        self.kind_adapters = QRadioButton("Adapters")
        self.kind_models = QRadioButton("Models (GGUF)")
        self.kind_adapters.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.kind_adapters)
        group.addButton(self.kind_models)
        self.kind_adapters.toggled.connect(self._on_kind_toggled)

        self.query = QLineEdit()
        self.query.setPlaceholderText("Search the Hugging Face Hub")
        self.query.setClearButtonEnabled(True)
        self.query.setAccessibleName("Hub search text")
        self.query.returnPressed.connect(self.search)
        self.for_base = QCheckBox("For base model:")
        self.for_base.setAccessibleName("Only adapters for this base model")
        self.base_id = QLineEdit()
        self.base_id.setPlaceholderText("e.g. Qwen/Qwen2.5-0.5B-Instruct")
        self.base_id.setAccessibleName("Base model id")
        self.format = QComboBox()
        self.format.setAccessibleName("Adapter format")
        for label, _ in FORMATS:
            self.format.addItem(label)
        self.sort = QComboBox()
        self.sort.setAccessibleName("Sort order")
        for label, _ in SORTS:
            self.sort.addItem(label)
        self.search_button = QPushButton("Search")
        self.search_button.setAccessibleName("Search the Hub")
        self.search_button.clicked.connect(self.search)

        row1 = QHBoxLayout()
        row1.addWidget(self.kind_adapters)
        row1.addWidget(self.kind_models)
        row1.addWidget(self.query, 1)
        row1.addWidget(self.search_button)
        row2 = QHBoxLayout()
        row2.addWidget(self.for_base)
        row2.addWidget(self.base_id, 1)
        row2.addWidget(self.format)
        row2.addWidget(self.sort)

        self.results = HubResultsModel(self)
        self.table = QTableView()
        self.table.setModel(self.results)
        self.table.setAccessibleName("Hub results")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().currentRowChanged.connect(self._on_table_current_changed)
        self.more_button = QPushButton("More results")
        self.more_button.setAccessibleName("More results")
        self.more_button.clicked.connect(self.more)
        self.more_button.setEnabled(False)
        # Before the first search the table is empty: say what to do instead of showing a blank pane.
        self.status = plain_label("Type a few words (or tick “For base model”) and press Search. Adapters are "
                             "checked against the loaded model before you download them.")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Hub status")
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.table, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.more_button)
        ll.addLayout(bottom)

        # Details.
        self.d_title = QLabel("<i>Select a repository</i>")
        self.d_title.setWordWrap(True)
        self.d_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.d_form = QFormLayout()
        self.d_verdict = plain_label()
        self.d_verdict.setWordWrap(True)
        self.d_verdict.setAccessibleName("Compatibility verdict")
        self.d_files = QListWidget()          # a display of the details dict, not a data store
        self.d_files.setAccessibleName("Files")
        self.download_button = QPushButton("Download and install")
        self.download_button.setAccessibleName("Download")
        self.download_button.clicked.connect(self.download_selected)
        self.download_button.setEnabled(False)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.d_title)
        rl.addLayout(self.d_form)
        rl.addWidget(self.d_verdict)
        rl.addWidget(QLabel("Files"))
        rl.addWidget(self.d_files, 1)
        rl.addWidget(self.download_button)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addWidget(split, 1)
        state.model_changed.connect(self._on_state_model_changed)
        self._on_state_model_changed()

    # -- state --
    def _on_state_model_changed(self) -> None:
        """Default the search to adapters for the loaded model. Finding its Hub id reads the model's
        metadata (a large GGUF header), so it runs as a job; only the newest job's answer is used."""
        if self._base_job is not None and not self._base_job.done:
            self._base_job.cancel()
        self._base_job = None
        if self.state.model is not None:
            job = self.state.jobs.start(_upstream_id, self.state.model.path)
            self._base_job = job
            job.signals.result.connect(lambda base, j=job: self._on_upstream_id(j, base))
        # A verdict shown for the previous model would be wrong now: check the selection again.
        if self._details is not None or self.table.currentIndex().isValid():
            self._on_table_current_changed(self.table.currentIndex(), None)

    def _on_upstream_id(self, job, base: str | None) -> None:
        if job is not self._base_job:
            return
        # Replace only what we filled in ourselves, never what the user typed.
        if base and self.base_id.text().strip() in ("", self._auto_base):
            self.base_id.setText(base)
            self._auto_base = base
        self.for_base.setChecked(bool(self.base_id.text()) and self.kind_adapters.isChecked())

    def _on_kind_toggled(self, adapters: bool) -> None:
        self.for_base.setEnabled(adapters)
        self.format.setEnabled(adapters)
        self.download_button.setText("Download and install" if adapters else "Download and load")
        self.results.clear()
        self._show_details(None)

    def show_models(self) -> None:
        self.kind_models.setChecked(True)
        self.query.setFocus()

    def params(self) -> dict:
        return {"kind": "adapter" if self.kind_adapters.isChecked() else "model",
                "text": self.query.text().strip() or None,
                "base": self.base_id.text().strip() or None if self.for_base.isChecked() else None,
                "format": FORMATS[self.format.currentIndex()][1] if self.kind_adapters.isChecked() else None,
                "sort": SORTS[self.sort.currentIndex()][1]}

    # -- searching --
    def search(self) -> None:
        # A new search is the user's retry: after "offline", the Hub is probed again (once; a few seconds
        # at most). Until then, every Hub call of the tab fails at once instead of waiting for timeouts.
        hub.retry_offline()
        self.results.clear()
        self._show_details(None)
        self._page = 0
        self._run_search()

    def more(self) -> None:
        self._page += 1
        self._run_search()

    def _run_search(self) -> None:
        if self._search_job is not None and not self._search_job.done:
            self._search_job.cancel()
        self.status.setText("Searching…")
        self.more_button.setEnabled(False)
        job = self.state.jobs.start(hub.search, self.params(), self._page, PAGE)
        self._search_job = job
        job.signals.result.connect(lambda rows, j=job: self._on_search_result(j, rows))
        job.signals.error.connect(lambda exc, j=job: self._on_search_error(j, exc))

    def _on_search_result(self, job, rows: list[dict]) -> None:
        if job is not self._search_job:
            return
        self.results.append(rows)
        n = self.results.rowCount()
        self.status.setText(f"{n} result(s)" if n else "Nothing found. Try fewer words or untick the base model.")
        self.more_button.setEnabled(len(rows) >= PAGE)

    def _on_search_error(self, job, exc) -> None:
        if job is not self._search_job:
            return
        self.status.setText(f"{exc} Press Search to try again." if hub.is_offline_error(exc) else str(exc))

    # -- details --
    def _on_table_current_changed(self, current, _previous) -> None:
        r = self.results.result(current.row()) if current.isValid() else None
        self._show_details(r)
        if r is None:
            return
        if self._details_job is not None and not self._details_job.done:
            self._details_job.cancel()
        base = self._compat_base()
        job = self.state.jobs.start(hub.details, r["repo_id"], self.params()["kind"], base)
        self._details_job = job
        job.signals.result.connect(lambda d, j=job: self._on_details(j, d))
        job.signals.error.connect(lambda exc, j=job: self._on_details_error(j, exc))

    def _compat_base(self):
        """What to check compatibility against: the loaded model (its upstream id or path)."""
        if self.state.model is None:
            return None
        return {"path": self.state.model.path, "id": self.base_id.text().strip() or None,
                "engine": self.state.model.engine}

    def _show_details(self, r: dict | None) -> None:
        self._details = None
        while self.d_form.rowCount():
            self.d_form.removeRow(0)
        self.d_files.clear()
        self.d_verdict.clear()
        self.download_button.setEnabled(False)
        self.d_title.setText(f"<b>{html.escape(r['repo_id'])}</b>" if r else "<i>Select a repository</i>")
        if r is not None:
            self.d_verdict.setText("Reading details…")

    def _on_details(self, job, d: dict) -> None:
        if job is not self._details_job:
            return
        self._details = d
        for label, key in (("Licence", "license"), ("Base model", "base_model"), ("Format", "format"),
                           ("Rank", "rank"), ("Alpha", "alpha"), ("Targets", "targets"),
                           ("Revision", "revision")):
            v = d.get(key)
            if v not in (None, "", []):
                lab = plain_label(", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
                lab.setWordWrap(True)
                self.d_form.addRow(label, lab)
        for f in d.get("files", []):
            item = QListWidgetItem(file_label(f, d.get("memory")))
            item.setData(Qt.ItemDataRole.UserRole, f["parts"] if "parts" in f else f["name"])   # a model: its parts
            self.d_files.addItem(item)
        self._show_verdict(d)
        if d.get("from_cache"):
            self.d_verdict.setText(f"{d.get('note', '')}\n{self.d_verdict.text()}".strip())
        if self.params()["kind"] == "model":          # only the models are listed: one is suggested
            names = [f["name"] for f in d.get("files", [])]
            if names:
                self.d_files.setCurrentRow(names.index(d["suggested"]) if d.get("suggested") in names else 0)
            self.download_button.setEnabled(bool(names))
        else:
            verdict = d.get("compat")                 # None when no model is loaded
            self.download_button.setEnabled(verdict is None or verdict.usable or self.state.model is None)

    def _show_verdict(self, d: dict) -> None:
        c = d.get("compat")
        if d.get("gated"):
            self.d_verdict.setText("This repository is gated: accept its terms on huggingface.co and set your "
                                   "token in Settings.")
            return
        if self.params()["kind"] == "model":
            self.d_verdict.setText("Choose one model: smaller ones load and answer faster, and Q4_K_M is a good "
                                   "start (chosen for you when this computer's memory holds it)."
                                   if d.get("files") else "No GGUF model in this repository.")
            return
        if c is None:
            self.d_verdict.setText("Load a model to check whether this adapter fits it.")
            return
        head = VERDICT_HEADS[c.status]
        self.d_verdict.setText(f"{head[:-1]}: {c.reason}" if c.reason else head)
        self.d_verdict.setForegroundRole(QPalette.ColorRole.Text)

    def _on_details_error(self, job, exc) -> None:
        if job is not self._details_job:
            return
        self.d_verdict.setText(str(exc))

    # -- downloading --
    def download_selected(self) -> None:
        d = self._details
        if d is None:
            return
        if self.params()["kind"] == "model":
            item = self.d_files.currentItem()
            if item is None:
                return
            self.start_model_download(d["repo_id"], list(item.data(Qt.ItemDataRole.UserRole)), d.get("revision"))
        else:
            self.start_adapter_download(d["repo_id"], d.get("revision"))

    def start_adapter_download(self, repo_id: str, revision: str | None = None):
        act = self.activities.start("download", f"Download {repo_id}")

        def start():
            self.activities.update(act, state="running", error="", message="", done=0.0, total=0.0,
                                   started=time.monotonic())       # (the rate of a resumed download)
            model = self.state.model
            job = self.state.jobs.start(hub.download_install_and_check, repo_id, revision,
                                        model.path if model else None, model.engine if model else None)
            act.handle = job
            # Bytes only: the panel shows size, rate and time left itself (the backend's message repeats them).
            job.signals.progress.connect(lambda d, t, _m: self.activities.update(act, done=d, total=t))
            job.signals.result.connect(lambda result: self._on_adapter_downloaded(act, *result))
            job.signals.error.connect(lambda exc: self._on_download_failed(act, exc))

        act.retry = start
        start()
        return act

    def start_model_download(self, repo_id: str, parts: list[str], revision: str | None = None):
        """Download a model: its file, or every part of a split model."""
        act = self.activities.start("download", f"Download {parts[0]}" + (f" ({len(parts)} parts)" if len(parts) > 1
                                                                          else ""))

        def start():
            self.activities.update(act, state="running", error="", message="", done=0.0, total=0.0,
                                   started=time.monotonic())       # (the rate of a resumed download)
            job = self.state.jobs.start(hub.download_model_file, repo_id, parts, revision)
            act.handle = job
            job.signals.progress.connect(lambda d, t, _m: self.activities.update(act, done=d, total=t))
            job.signals.result.connect(lambda path: self._on_model_downloaded(act, path))
            job.signals.error.connect(lambda exc: self._on_download_failed(act, exc))

        act.retry = start
        start()
        return act

    def _on_adapter_downloaded(self, act, entry, verdict=None) -> None:
        warning = "" if verdict is None or verdict.usable else \
            f"it does not fit {self.state.model_label() or 'the loaded model'}"
        self.activities.update(act, state="done", message=f"installed as '{entry.name}'", warning=warning)
        self.state.note_installed(entry, verdict)   # in the library at once (with its verdict), then re-read

    def _on_model_downloaded(self, act, path: str) -> None:
        self.activities.update(act, state="done", message="loading the model")
        self.state.load_model(str(path), "llama.cpp")

    def _on_download_failed(self, act, exc) -> None:
        from adapters_backend.errors import JobCancelled
        if isinstance(exc, JobCancelled):
            self.activities.update(act, state="cancelled", message="")
        else:
            self.activities.update(act, state="failed", error=str(exc))


def _upstream_id(model_path: str, ctx=None) -> str | None:
    """The Hub id adapters for this model are made for: a Hub id model is its own; a local model says
    it in its metadata (GGUF `general.base_model.*`, HF config `_name_or_path`) or not at all."""
    if is_hub_id(model_path):
        return model_path
    return hub.upstream_base_of(model_path)


def file_label(f: dict, memory: int | None) -> str:
    """A file of the details list: "model-Q4_K_M.gguf  (4.9 GB)", with a split model's parts counted and a
    model too large for this computer's memory said so."""
    size = format_bytes(f.get("size"))
    parts = len(f.get("parts") or [])
    where = ", ".join(x for x in (f"{parts} parts" if parts > 1 else "", size) if x)
    label = f"{f['name']}  ({where})" if where else f["name"]
    if f.get("fits") is False and memory:
        label += f" — too large for this computer's {format_bytes(memory)} of memory"
    return label
