"""The app's log file, for when something went wrong and nobody was watching a terminal.

The installed app has no terminal: a warning (an adapter mix that could not be fused, a snapshot not
kept, llama.cpp's own complaints) and the traceback behind "Something went wrong" were lost once the
dialog closed. They go to loradeck.log in the log folder (Help → Open log folder): LoRA Deck's own
messages from INFO up, other libraries' from WARNING up (httpx alone would log every Hub request), in
at most three files of 1 MB. Names from outside are written with their control characters escaped, as
the command line prints them, so reading the log in a terminal runs nothing. No conversation text is
logged.
"""
from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

from adapters_backend.cli.terminal import visible
from adapters_backend.paths import log_dir

LOG_NAME = "loradeck.log"
MAX_BYTES = 1 << 20
BACKUPS = 2                      # loradeck.log.1 and .2 beside the current one
OURS = ("adapters_backend", "desktop_app", "loradeck", "llama_cpp")   # llama_cpp: llama.cpp's warnings (engines/llama_log.py)

log = logging.getLogger(__name__)


class _InertFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return visible(super().format(record))


def _ours_or_warning(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.name.split(".", 1)[0] in OURS


def log_file() -> Path:
    return log_dir() / LOG_NAME


def install_log_file() -> logging.Handler | None:
    """Send log records to the rotating log file (returns its handler; None if the folder is not
    writable, which only costs the log). The console keeps showing warnings only."""
    try:
        handler = RotatingFileHandler(log_file(), maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    except OSError as exc:
        log.warning("no log file: %s", exc)
        return None
    handler.setLevel(logging.INFO)
    handler.addFilter(_ours_or_warning)
    handler.setFormatter(_InertFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in root.handlers:           # the console (basicConfig's) stays at warnings
        if existing.level == logging.NOTSET:
            existing.setLevel(max(root.level, logging.WARNING))
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    return handler
