"""Small JSON files the app keeps (conversations, presets), written so a crash never leaves half a file.

Each write goes to a temporary file in the same folder, is flushed to disk, then renamed over the
old one: a reader sees the old content or the new one, never a mix.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def write_json_atomic(path: Path, obj: object) -> None:
    import json  # noqa: PLC0415 - not needed to paint the first window
    import tempfile  # noqa: PLC0415
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path: Path, default: object = None) -> object:
    """The file's JSON, or `default` when it is missing or unreadable (logged, never raised)."""
    import json  # noqa: PLC0415
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return default
