"""Download progress across files: bytes, rate, ETA, reported through a JobContext; cancel is checked
on every chunk (the exception leaves huggingface_hub's http_get, the partial file stays for resume)."""
from __future__ import annotations

import time

from ..jobs import JobContext


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class Progress:
    def __init__(self, ctx: JobContext | None, total: int, label: str = ""):
        self.ctx = ctx or JobContext()
        self.total = max(int(total or 0), 0)
        self.done = 0
        self.label = label
        self._t0 = time.monotonic()
        self._fresh = 0          # bytes downloaded in this session (the rate ignores resumed bytes)

    def skip(self, n: int) -> None:
        """Bytes already present (cache or partial file): counted as done, not in the rate."""
        self.done += n
        self._emit()

    def add(self, n: int) -> None:
        self.ctx.check()
        self.done += n
        self._fresh += n
        self._emit()

    @property
    def rate(self) -> float:
        dt = time.monotonic() - self._t0
        return self._fresh / dt if dt > 0 else 0.0

    def message(self) -> str:
        text = f"{self.label}: {human(self.done)}"
        if self.total:
            text += f" of {human(self.total)}"
        if self._fresh:
            text += f", {human(self.rate)}/s"
            if self.total and self.rate > 0:
                text += f", {max(self.total - self.done, 0) / self.rate:.0f} s left"
        return text

    def _emit(self) -> None:
        self.ctx.report(self.done, self.total, self.message())

    def tqdm_class(self):
        """A class huggingface_hub's http_get accepts as `tqdm_class`, feeding this Progress."""
        progress = self

        class _Bar:
            def __init__(self, *args, initial: int = 0, **kwargs):
                self.n = initial

            def update(self, n: int = 1) -> None:
                self.n += n
                if n > 0:
                    progress.add(n)
                else:       # the server ignored a Range request: those bytes will come again
                    progress.done += n

            def close(self) -> None:
                pass

            def __enter__(self):
                return self

            def __exit__(self, *exc) -> None:
                self.close()

        return _Bar
