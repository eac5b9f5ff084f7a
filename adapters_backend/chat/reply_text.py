"""Streamed reply text: token bytes in, clean text pieces out.

Tokens are byte pieces, so one character may span two tokens: an incremental UTF-8 decoder holds
incomplete sequences back. Stop strings (a template's end-of-turn text) are cut off, and any tail
that could still become one is held back until it cannot, so a stop string never flashes on screen.
Leading spaces of the reply are dropped (SentencePiece vocabularies start words with one), unless
``strip_leading=False`` (a raw text continuation, where " Paris" after "is" needs its space).
"""
from __future__ import annotations

import codecs
from collections.abc import Sequence


class ReplyText:
    def __init__(self, stops: Sequence[str] = (), strip_leading: bool = True, opened: str = ""):
        """`opened`: what the prompt opened for the reply (a reasoning's `<think>`), handed out with its
        first text (a reply with no text stays empty)."""
        self._stops = tuple(s for s in stops if s)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._started = not strip_leading
        self.stopped = False
        self._opened = opened
        self.text = ""                 # everything emitted so far

    def push(self, data: bytes) -> str:
        """Add one token's bytes; returns the text that is now safe to show ("" if none)."""
        if self.stopped:
            return ""
        piece = self._decoder.decode(data)
        if not self._started:
            piece = piece.lstrip(" ")
            self._started = bool(piece)
        self._pending += piece
        cut = min((i for i in (self._pending.find(s) for s in self._stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            return self._emit(self._pending[:cut])
        hold = self._held_tail()
        return self._emit(self._pending[: len(self._pending) - hold], keep=hold)

    def flush(self) -> str:
        """The rest at the end of the reply (nothing if a stop string ended it)."""
        if self.stopped:
            return ""
        rest = self._pending + self._decoder.decode(b"", final=True)
        if not self._started:
            rest = rest.lstrip(" ")
        return self._emit(rest)

    def _held_tail(self) -> int:
        best = 0
        for s in self._stops:
            for k in range(min(len(s) - 1, len(self._pending)), best, -1):
                if self._pending.endswith(s[:k]):
                    best = k
                    break
        return best

    def _emit(self, text: str, keep: int = 0) -> str:
        self._pending = self._pending[len(self._pending) - keep:] if keep else ""
        if text and self._opened:
            text, self._opened = self._opened + text, ""
        self.text += text
        return text
