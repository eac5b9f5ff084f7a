"""Drag and drop onto the window: adapter folders, .zip, .safetensors, .gguf adapters are installed
into the library (with progress in the downloads panel); a GGUF *base model* is offered as the model
to load; anything else is refused with the exact reason."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox

from adapters_backend.errors import BackendError

from . import library_access as lib
from .plain_text import message_box
from .transient_dialogs import open_once

ACCEPTED_SUFFIXES = (".zip", ".safetensors", ".gguf")


def droppable(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in ACCEPTED_SUFFIXES


class DropInstaller(QObject):
    rejected = Signal(str, str)            # path, reason
    installed = Signal(str, object)        # path, library entry
    model_offered = Signal(str)            # path of a GGUF base model

    def __init__(self, state, activities, parent_widget):
        super().__init__(parent_widget)
        self.state = state
        self.activities = activities
        self.parent_widget = parent_widget
        self.ask_before_loading = True

    def handle_paths(self, paths: list[Path]) -> None:
        for p in paths:
            p = Path(p)
            if not p.exists():
                self._reject(p, "it does not exist (was it moved?)")
            elif not droppable(p):
                self._reject(p, "LoRA Deck takes adapter folders, .zip, .safetensors and .gguf files; "
                                f"'{p.suffix or p.name}' is none of these")
            elif p.suffix.lower() == ".gguf":
                job = self.state.jobs.start(lib.gguf_kind, str(p))
                job.signals.result.connect(lambda kind, p=p: self._on_gguf_classified(p, kind))
                job.signals.error.connect(lambda exc, p=p: self._reject(p, str(exc)))
            else:
                self.install(p)

    def _on_gguf_classified(self, p: Path, kind: str) -> None:
        if kind == "model":
            self.model_offered.emit(str(p))
            if not self.ask_before_loading:
                self.state.load_model(str(p), "llama.cpp")
                return
            box = message_box(QMessageBox.Icon.Question, "Load this model?",
                              f"{p.name} is a base model, not an adapter. Load it now?",
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self.parent_widget)
            box.setAccessibleName("Load dropped model")
            box.accepted.connect(lambda: self.state.load_model(str(p), "llama.cpp"))
            self.question_box = open_once(box)
        else:
            self.install(p)

    def install(self, p: Path) -> None:
        title = f"Install {p.name}"
        act = self.activities.start("install", title)
        state = self.state

        def start():
            self.activities.update(act, state="running", error="", message="", done=0.0, total=0.0)
            job = state.install(str(p))
            act.handle = job
            job.signals.progress.connect(lambda d, t, m: self.activities.update(act, done=d, total=t, message=m))
            job.signals.result.connect(lambda result: self._on_done(act, p, *result))
            job.signals.error.connect(lambda exc: self._on_failed(act, p, exc))

        act.retry = start
        start()

    def _on_done(self, act, p: Path, entry, verdict=None) -> None:
        warning = ""
        if verdict is not None and not verdict.usable:
            warning = f"it does not fit {self.state.model_label() or 'the loaded model'}"
        self.activities.update(act, state="done", message=f"added as '{entry.name}'", warning=warning)
        self.installed.emit(str(p), entry)

    def _on_failed(self, act, p: Path, exc) -> None:
        from adapters_backend.errors import JobCancelled
        if isinstance(exc, JobCancelled):
            self.activities.update(act, state="cancelled")
            return
        self.activities.update(act, state="failed", error=str(exc))
        self._reject(p, str(exc))

    def _reject(self, p: Path, reason: str) -> None:
        self.rejected.emit(str(p), reason)
        self.state.errors.report(_DropRefused(f"{p.name} was not installed: {reason}"), "Cannot install")


class _DropRefused(BackendError):
    """A refused drop: shown as is (user-facing text), not as a bug."""
