"""Catch llama.cpp's log text so its reasons ("unknown model architecture", "does not exist in base
model", "failed to allocate") reach the user inside our errors instead of vanishing on stderr.

llama.cpp has one process-wide log callback. We install ours once (after llama-cpp-python installed
its own) and keep the recent lines in a ring buffer; `capture()` returns the lines logged during a
block. Everything is also passed to Python logging (logger "llama_cpp"; warnings and errors at INFO).
"""
from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger("llama_cpp")

# ggml_log_level (ggml.h; llama-cpp-python's own _logger.py still has the old order):
# 0 none, 1 debug, 2 info, 3 warn, 4 error, 5 continuation of the previous message.
WARN, ERROR = 3, 4
# llama.cpp's warnings and errors go to Python logging at INFO only: the ones that matter reach the
# user inside our exceptions, and the rest ("n_ctx_seq < n_ctx_train") would be noise on stderr.
_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.INFO}
_MAX_LINES = 400

_lock = threading.Lock()
_lines: deque[tuple[int, int, str]] = deque(maxlen=_MAX_LINES)   # (sequence number, level, text)
_seq = 0
_last_level = 2
_callback = None                       # the ctypes callback object; must stay referenced
_listeners: dict[int, Callable[[str], None]] = {}   # thread id -> sees that thread's messages as they come


def _on_log(level: int, text: bytes, _user_data) -> None:
    global _seq, _last_level
    try:
        msg = text.decode("utf-8", errors="replace") if text else ""
        if level == 5:
            level = _last_level
        _last_level = level
        with _lock:
            _seq += 1
            _lines.append((_seq, level, msg))
        if msg.strip():
            log.log(_LEVELS.get(level, logging.DEBUG), "%s", msg.rstrip())
            listener = _listeners.get(threading.get_ident())
            if listener is not None:
                listener(msg)
    except Exception:  # an exception must never cross back into C
        pass


def install() -> None:
    """Route llama.cpp's log into this module (idempotent)."""
    global _callback
    if _callback is not None:
        return
    import llama_cpp
    import llama_cpp.llama  # its import installs llama-cpp-python's logger; ours goes after

    _callback = llama_cpp.llama_log_callback(_on_log)
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def _mark() -> int:
    with _lock:
        return _seq


def messages_since(mark: int) -> list[tuple[int, str]]:
    """(level, text) of every log message after `mark`, continuation pieces joined."""
    with _lock:
        picked = [(lvl, text) for seq, lvl, text in _lines if seq > mark]
    messages: list[tuple[int, str]] = []
    for lvl, text in picked:
        if messages and not messages[-1][1].endswith("\n"):
            messages[-1] = (max(messages[-1][0], lvl), messages[-1][1] + text)
        else:
            messages.append((lvl, text))
    return [(lvl, t.strip()) for lvl, t in messages if t.strip()]


def lines_since(mark: int, min_level: int = WARN) -> list[str]:
    """Log messages after `mark` with level ≥ min_level (WARN: warnings and errors)."""
    return [t for lvl, t in messages_since(mark) if lvl >= min_level]


class Capture:
    """The log lines of one block: `.errors` (warnings and errors) and `.all` (everything)."""

    def __init__(self) -> None:
        self.mark = _mark()

    @property
    def errors(self) -> list[str]:
        return lines_since(self.mark, WARN)

    @property
    def all(self) -> list[str]:
        return lines_since(self.mark, 0)

    def reason(self, limit: int = 3) -> str:
        """The most telling lines, for an error message ("" when llama.cpp said nothing): its errors,
        else its warnings, else anything mentioning a failure."""
        msgs = messages_since(self.mark)
        lines = ([t for lvl, t in msgs if lvl >= ERROR] or [t for lvl, t in msgs if lvl == WARN]
                 or [t for _lvl, t in msgs if "error" in t.lower() or "fail" in t.lower()])
        seen: list[str] = []
        for t in lines:
            t = t.removeprefix("llama_model_load: ").strip()
            if t not in seen:
                seen.append(t)
        return "; ".join(seen[:limit])


@contextlib.contextmanager
def capture(on_message: Callable[[str], None] | None = None):
    """The log lines of the block; `on_message(text)` also sees each message piece as llama.cpp logs
    it from this thread (to follow a long call's progress: llama_model_quantize logs every tensor).
    It runs inside llama.cpp's callback: it must be quick, and whatever it raises is dropped."""
    install()
    cap = Capture()
    tid = threading.get_ident()
    if on_message is not None:
        _listeners[tid] = on_message
    try:
        yield cap
    finally:
        if on_message is not None:
            _listeners.pop(tid, None)
