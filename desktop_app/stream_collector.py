"""Routes streamed tokens of several queued generations to their panes (compare, sweep), painting at
most every FLUSH_MS, and says when all of them are finished."""
from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

FLUSH_MS = 30


class StreamCollector(QObject):
    all_finished = Signal()
    one_finished = Signal(object, object)        # pane, GenerationStats | None

    def __init__(self, host, errors, parent=None):
        super().__init__(parent)
        self.host = host
        self.errors = errors
        self._panes: dict[int, object] = {}
        self._buffers: dict[int, list[str]] = {}
        self._timer = QTimer(self, singleShot=True, interval=FLUSH_MS)
        self._timer.timeout.connect(self._flush)
        host.token_streamed.connect(self._on_host_token_streamed)
        host.generation_finished.connect(self._on_host_generation_finished)
        host.generation_failed.connect(self._on_host_generation_failed)

    @property
    def running(self) -> bool:
        return bool(self._panes)

    def track(self, request_id: int, pane) -> None:
        self._panes[request_id] = pane
        self._buffers[request_id] = []

    def _on_host_token_streamed(self, request_id: int, text: str, _n: int) -> None:
        if request_id in self._buffers:
            self._buffers[request_id].append(text)
            if not self._timer.isActive():
                self._timer.start()

    def _flush(self) -> None:
        for rid, buf in self._buffers.items():
            if buf:
                self._panes[rid].append("".join(buf))
                buf.clear()

    def _done(self, request_id: int, stats, error=None) -> None:
        self._flush()
        pane = self._panes.pop(request_id)
        self._buffers.pop(request_id, None)
        if error is not None:
            pane.set_info(f"failed: {error}")
        elif stats.cancelled:
            pane.set_info("stopped")
        else:
            info = f"{stats.tokens} tokens · {stats.tokens_per_second:.1f} tok/s"
            if stats.prompt_cached:                # this mix had read the prompt before (KV snapshot)
                info += f" · prompt {stats.prompt_cached}/{stats.prompt_tokens} tokens reused"
            pane.set_info(info)
        self.one_finished.emit(pane, stats)
        if not self._panes:
            self.all_finished.emit()

    def _on_host_generation_finished(self, stats) -> None:
        if stats.request_id in self._panes:
            self._done(stats.request_id, stats)

    def _on_host_generation_failed(self, request_id: int, exc) -> None:
        if request_id in self._panes:
            self._done(request_id, None, exc)
