"""Download progress across files: bytes, rate, ETA, reported through a JobContext; cancel is checked
on every chunk (the exception leaves huggingface_hub's http_get, the partial file stays for resume)."""
from __future__ import annotations

import time

from ..jobs import JobContext
from ..units import transfer_text


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
        return f"{self.label}: {transfer_text(self.done, self.total, self.rate if self._fresh else None)}"

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
