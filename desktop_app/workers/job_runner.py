"""JobRunner: every long operation runs off the GUI thread and reports back on it.

A job is a plain backend function `fn(*args, ctx=JobContext, **kwargs)`. It runs on a QThreadPool
thread; its JobContext progress, any partial results (`ctx.partial(obj)` for streamed tokens), its
result or its error arrive as Qt signals, queued onto the GUI thread. Cancellation is cooperative:
`handle.cancel()` sets the context's flag, the function checks it between units of work.
"""
from __future__ import annotations

import logging
import traceback
from collections.abc import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal

from adapters_backend.errors import JobCancelled
from adapters_backend.jobs import JobContext

log = logging.getLogger(__name__)


class JobSignals(QObject):
    progress = Signal(float, float, str)     # done, total, message
    partial = Signal(object)                 # streamed piece (token chunk, search page…)
    result = Signal(object)
    error = Signal(object)                   # the exception (BackendError has user-facing text)
    finished = Signal()                      # always last, after result or error


class QtJobContext(JobContext):
    """A JobContext whose progress and partial results become signals."""

    def __init__(self, signals: JobSignals):
        super().__init__(on_progress=lambda d, t, m: signals.progress.emit(float(d), float(t), m))
        self._signals = signals

    def partial(self, obj: object) -> None:
        self._signals.partial.emit(obj)


class _Runnable(QRunnable):
    def __init__(self, fn: Callable, args, kwargs, signals: JobSignals, ctx: QtJobContext):
        super().__init__()
        self.setAutoDelete(True)
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._signals, self._ctx = signals, ctx

    def run(self) -> None:
        try:
            if self._ctx.cancelled():          # cancelled before a pool thread took it: do no work
                raise JobCancelled("cancelled before it started")
            value = self._fn(*self._args, ctx=self._ctx, **self._kwargs)
        except BaseException as exc:  # any failure becomes an error signal, never a dead app
            if not isinstance(exc, Exception):
                exc = RuntimeError(f"{type(exc).__name__}: {exc}")
            log.debug("job %s failed:\n%s", getattr(self._fn, "__name__", self._fn), traceback.format_exc())
            self._emit(self._signals.error, exc)
        else:
            self._emit(self._signals.result, value)
        finally:
            self._emit(self._signals.finished)

    def _emit(self, signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:
            # The receiving side is gone (window closed while the job ran): nothing left to tell.
            log.debug("job %s finished after its receiver was deleted", getattr(self._fn, "__name__", self._fn))


class JobHandle(QObject):
    """What `JobRunner.start` returns: the signals to connect and a way to cancel.

    A QObject living on the GUI thread, so its slot runs there (queued) when the worker finishes."""

    def __init__(self, signals: JobSignals, ctx: QtJobContext, on_done: Callable[["JobHandle"], None]):
        super().__init__()
        self.signals = signals
        self.ctx = ctx
        self.done = False
        self._on_done = on_done
        signals.finished.connect(self._on_finished)

    def _on_finished(self) -> None:
        self.done = True
        self.signals.deleteLater()      # on the GUI thread, after the events already queued for them
        self._on_done(self)

    def cancel(self) -> None:
        self.ctx.cancel()


class JobRunner(QObject):
    """Starts jobs on a thread pool. Keep one runner per window."""

    def __init__(self, parent: QObject | None = None, max_threads: int = 4):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._handles: set[JobHandle] = set()
        self._queued: list[_Runnable] = []

    def start(self, fn: Callable, *args, **kwargs) -> JobHandle:
        # Signals are created here, on the GUI thread, so their slots run on the GUI thread. Their
        # parent is the runner, so their last Python reference going away never destroys them: that
        # was the handle's, dropped while the handle itself was being torn down in its own finished
        # slot, and that nested teardown read a freed wrapper now and then (a job ending within
        # microseconds of the app's start crashed the first GUI tests in 5 of 16 runs; 0 of 22
        # since). They are deleted on their own once the job has finished (JobHandle).
        signals = JobSignals(self)
        ctx = QtJobContext(signals)
        handle = JobHandle(signals, ctx, self._handles.discard)
        self._handles.add(handle)
        # Handed to the pool only when control is back in the event loop: the caller connects to the
        # handle's signals after start() returns, and a signal emitted before that (a job finishing in
        # microseconds on another thread) would reach no slot at all — its result silently lost.
        self._queued.append(_Runnable(fn, args, kwargs, signals, ctx))
        if len(self._queued) == 1:
            QTimer.singleShot(0, self, self._start_queued)
        return handle

    def _start_queued(self) -> None:
        queued, self._queued = self._queued, []
        for runnable in queued:
            self._pool.start(runnable)

    def active(self) -> int:
        return len(self._handles)

    def cancel_all(self) -> None:
        for h in list(self._handles):
            h.cancel()

    def wait(self, msecs: int = -1) -> bool:
        self._start_queued()                   # (cancelled ones end at once without running)
        return self._pool.waitForDone(msecs)
