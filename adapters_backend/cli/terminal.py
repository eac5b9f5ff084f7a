"""What the command line prints is text, never commands to the terminal.

Names and text from outside (an adapter's folder or file name, its metadata, a model card, a server's
adapter list, the model's own answer, an error quoting any of them) can hold control characters. A
terminal obeys those: ESC and the C1 codes start sequences that clear the screen, rewrite the window
title, make links that show one address and open another, or, in many terminals, put text on the
clipboard (OSC 52) — all from `loradeck list` or a chat reply. So every control character but tab and
newline is written as its `\\uXXXX` escape (the same escape JSON uses, so `--json` output stays valid
JSON with the same values). stderr keeps carriage returns: the progress bar redraws its line with them.
"""
from __future__ import annotations

import contextlib
import sys

_C0_C1 = (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))
_KEPT_STDOUT = {0x09, 0x0A}                  # tab, newline
_KEPT_STDERR = {0x09, 0x0A, 0x0D}            # and the progress bar's carriage return
_STDOUT_TABLE = {c: f"\\u{c:04x}" for c in _C0_C1 if c not in _KEPT_STDOUT}
_STDERR_TABLE = {c: f"\\u{c:04x}" for c in _C0_C1 if c not in _KEPT_STDERR}


def visible(text: str) -> str:
    """`text` with every control character but tab and newline written as its escape."""
    return text.translate(_STDOUT_TABLE)


class InertText:
    """A text stream that writes control characters as escapes (everything else passes to `stream`)."""

    def __init__(self, stream, table: dict[int, str]):
        self._stream = stream
        self._table = table

    def write(self, text: str) -> int:
        self._stream.write(text.translate(self._table))
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name):                  # flush, fileno, isatty, encoding, buffer …
        return getattr(self._stream, name)


@contextlib.contextmanager
def inert_output():
    """For the length of one command, sys.stdout and sys.stderr write control characters as escapes."""
    saved = sys.stdout, sys.stderr
    if not isinstance(sys.stdout, InertText):
        sys.stdout = InertText(sys.stdout, _STDOUT_TABLE)
    if not isinstance(sys.stderr, InertText):
        sys.stderr = InertText(sys.stderr, _STDERR_TABLE)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
