"""Progress lines on the terminal for long commands, drawn by tqdm (rate and time left included).

`progress_context(label)` gives a JobContext whose reports move one bar on stderr; nothing is drawn
when stderr is not a terminal (pipes, logs, tests), so output stays clean.
"""
from __future__ import annotations

import sys

from ..jobs import JobContext


class _Bar:
    def __init__(self, label: str, unit: str):
        self.label, self.unit = label, unit
        self.bar = None

    def __call__(self, done: float, total: float, message: str) -> None:
        from tqdm import tqdm
        if self.bar is None:
            scale = self.unit == "B"
            self.bar = tqdm(total=total or None, desc=self.label, unit=self.unit, unit_scale=scale,
                            unit_divisor=1000, file=sys.stderr, leave=True, dynamic_ncols=True)
        if total and self.bar.total != total:
            self.bar.total = total
        self.bar.set_postfix_str(message[:48], refresh=False)
        self.bar.update(max(0.0, done - self.bar.n))
        if total and done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def progress_context(label: str, unit: str = "it", quiet: bool = False) -> JobContext:
    """A JobContext that shows its progress as a bar labelled `label` (`unit="B"` for byte counts)."""
    if quiet or not sys.stderr.isatty():
        return JobContext()
    return JobContext(_Bar(label, unit))
