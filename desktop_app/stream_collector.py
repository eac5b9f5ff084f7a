"""Routes the streamed tokens of queued generations to their panes (the chat's reply, compare and
sweep cells), painting at most every FLUSH_MS however fast the engine is, and says when each and
all of them are finished."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QTimer, Signal

FLUSH_MS = 30


@dataclass
class Arrival:
    """How one reply's tokens reached the GUI thread."""
    tokens: int = 0
    first_batch: int = 0                 # tokens in the first piece (they took the prompt's time)
    t_first: float | None = None         # perf_counter() of the first and the latest piece
    t_last: float | None = None
    pending: list[str] = field(default_factory=list)   # text not painted yet

    def add(self, text: str, n_tokens: int) -> None:
        now = time.perf_counter()
        if self.t_first is None:
            self.t_first, self.first_batch = now, n_tokens
        self.t_last = now
        self.tokens += n_tokens
        self.pending.append(text)

    @property
    def tokens_per_second(self) -> float | None:
        """Tokens/s as they reached the GUI: those after the first arrival over the time since it."""
        if self.t_first is None or self.t_last is None or self.t_last <= self.t_first:
            return None
        return (self.tokens - self.first_batch) / (self.t_last - self.t_first)


class StreamCollector(QObject):
    """A pane has `append(text)` and `set_info(text)` (and may have `set_failed(text)`); `track()` sends
    one request's text to it. `describe_error(exc)` words a failure for the user (default: str)."""

    all_finished = Signal()
    one_finished = Signal(object, object, object)   # pane, GenerationStats | None, error | None

    def __init__(self, host, parent=None, describe_error=str):
        super().__init__(parent)
        self._describe_error = describe_error
        self._panes: dict[int, object] = {}
        self._arrivals: dict[int, Arrival] = {}
        self._timer = QTimer(self, singleShot=True, interval=FLUSH_MS)
        self._timer.timeout.connect(self._flush)
        host.token_streamed.connect(self._on_host_token_streamed)
        host.generation_finished.connect(self._on_host_generation_finished)
        host.generation_failed.connect(self._on_host_generation_failed)

    @property
    def running(self) -> bool:
        return bool(self._panes)

    def track(self, request_id: int, pane) -> Arrival:
        """Stream `request_id` into `pane`; the returned record counts what arrives."""
        self._panes[request_id] = pane
        self._arrivals[request_id] = arrival = Arrival()
        return arrival

    def _on_host_token_streamed(self, request_id: int, text: str, n_tokens: int) -> None:
        arrival = self._arrivals.get(request_id)
        if arrival is not None:
            arrival.add(text, n_tokens)
            if not self._timer.isActive():
                self._timer.start()

    def _flush(self) -> None:
        for rid, arrival in self._arrivals.items():
            if arrival.pending:
                text = "".join(arrival.pending)
                arrival.pending.clear()
                self._panes[rid].append(text)

    def _done(self, request_id: int, stats, error=None) -> None:
        self._flush()
        pane = self._panes.pop(request_id)
        self._arrivals.pop(request_id)
        if error is not None:
            text = self._describe_error(error)
            if hasattr(pane, "set_failed"):
                pane.set_failed(text)
            else:
                pane.set_info(f"failed: {text}")
        elif stats.cancelled:
            pane.set_info("stopped")
        else:
            info = f"{stats.tokens} tokens · {stats.tokens_per_second:.1f} tok/s"
            if stats.prompt_cached:                # this mix had read the prompt before (KV snapshot)
                info += f" · prompt {stats.prompt_cached}/{stats.prompt_tokens} tokens reused"
            pane.set_info(info)
        self.one_finished.emit(pane, stats, error)
        if not self._panes:
            self.all_finished.emit()

    def _on_host_generation_finished(self, stats) -> None:
        if stats.request_id in self._panes:
            self._done(stats.request_id, stats)

    def _on_host_generation_failed(self, request_id: int, exc) -> None:
        if request_id in self._panes:
            self._done(request_id, None, exc)
