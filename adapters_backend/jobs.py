"""JobContext: how long backend functions report progress and learn they were cancelled.

Backend functions take a JobContext and call `report()` as they go; the CLI prints it, the desktop
app turns it into Qt signals. `check()` raises JobCancelled once the user asked to stop.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import JobCancelled

ProgressCallback = Callable[[float, float, str], None]


class JobContext:
    def __init__(self, on_progress: ProgressCallback | None = None):
        self._on_progress = on_progress
        self._cancel = threading.Event()

    def report(self, done: float, total: float, message: str = "") -> None:
        if self._on_progress is not None:
            self._on_progress(done, total, message)

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        """Raise JobCancelled if cancellation was requested (call between units of work)."""
        if self._cancel.is_set():
            raise JobCancelled("cancelled")

