"""One place where errors become dialogs: worker errors and uncaught exceptions on any thread.

Backend errors carry user-facing text and are shown as they are; anything else is a bug, shown with
a short message and the traceback under "Show Details…", and logged. The app never dies from one.
"""
from __future__ import annotations

import logging
import sys
import threading
import traceback

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from adapters_backend.errors import BackendError

log = logging.getLogger(__name__)


def error_text(exc: BaseException) -> tuple[str, str]:
    """(message for the user, technical details)."""
    if isinstance(exc, BackendError):
        return str(exc), ""
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    from adapters_backend.disk_space import reason
    why = reason(exc) if isinstance(exc, OSError) else None
    if why is not None:             # a full or read-only disk: the user's to fix, not a bug of ours
        return (f"{exc.filename}: {why}" if exc.filename else f"A file could not be written: {why}"), details
    return f"Something went wrong: {type(exc).__name__}: {exc}", details


def with_names(text: str, names: dict[str, str]) -> str:
    """`text` with each adapter path in `names` ({path: display name}) replaced by the name: errors
    speak of adapters as the user knows them, never by where their files are."""
    from pathlib import Path
    forms: dict[str, str] = {}
    for path, name in names.items():
        for form in (str(path), str(Path(path).expanduser().resolve(strict=False))):
            if form and form not in ("/", "."):
                forms[form] = name
    for form in sorted(forms, key=len, reverse=True):      # a folder's path before its parent's
        text = text.replace(form, forms[form])
    return text


class ErrorReporter(QObject):
    """Collects errors from any thread and shows them on the GUI thread, one dialog at a time."""

    error_raised = Signal(object, str)        # exception, context ("Loading model", …)

    def __init__(self, parent_widget: QWidget | None = None):
        super().__init__()
        self._parent = parent_widget
        self.history: list[tuple[str, str]] = []
        self.show_dialogs = True
        self.error_raised.connect(self._show)

    def set_parent_widget(self, widget: QWidget) -> None:
        self._parent = widget

    def report(self, exc: BaseException, context: str = "") -> None:
        self.error_raised.emit(exc, context)

    def _show(self, exc: BaseException, context: str) -> None:
        from PySide6.QtWidgets import QMessageBox  # only when shown

        from .plain_text import message_box
        from .transient_dialogs import open_once
        message, details = error_text(exc)
        self.history.append((context, message))
        log.error("%s%s", f"{context}: " if context else "", message)
        if details:
            log.error(details)
        if not self.show_dialogs:
            return
        box = message_box(QMessageBox.Icon.Warning, context or "LoRA Deck", message,
                          QMessageBox.StandardButton.Ok, self._parent)
        if details:
            box.setDetailedText(details)
        box.setAccessibleName("Error")
        open_once(box)

    def install_hooks(self) -> None:
        """Route uncaught exceptions (GUI thread and other threads) here instead of killing the app."""
        def excepthook(exc_type, exc, tb):
            if issubclass(exc_type, KeyboardInterrupt):
                sys.__excepthook__(exc_type, exc, tb)
                return
            self.report(exc.with_traceback(tb), "Unexpected error")

        def thread_hook(args: threading.ExceptHookArgs):
            if args.exc_value is not None:
                self.report(args.exc_value, f"Unexpected error in {getattr(args.thread, 'name', 'a thread')}")

        sys.excepthook = excepthook
        threading.excepthook = thread_hook
