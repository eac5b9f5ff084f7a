"""Write files so that a crash or an error never leaves half of one.

Every write goes to a temporary file beside the target, is flushed and fsync'd, then `os.replace`d
onto it (and the folder fsync'd, so the rename itself survives a power cut). A reader sees the old
content or the new, never a mix; an error deletes the temporary file and leaves the target as it was.
A full or read-only disk is reported naming the target (disk_space.WriteFailed).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path

from .disk_space import check_replaceable, writing
from .json_input import JsonInputError, parse_json

log = logging.getLogger(__name__)

PUBLIC = 0o644            # outputs the user asked for (models, adapters); private data keeps mkstemp's 0600


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (no-op on Windows, where NTFS journals renames)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicFile:
    """A temporary file beside `dest`: write to `tmp`, then `commit()` (fsync, replace) or `discard()`."""

    def __init__(self, dest: str | os.PathLike, suffix: str = ".partial", mode: int | None = None):
        self.dest = Path(dest)
        check_replaceable(self.dest)
        with writing(self.dest):
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{self.dest.name}.", suffix=suffix, dir=self.dest.parent)
        os.close(fd)
        self.tmp = Path(name)
        self.mode = mode
        self.done = False

    def commit(self, fileobj=None) -> Path:
        """Flush and fsync `fileobj` (the open temp file) if given, close it, and move the file onto `dest`."""
        with writing(self.dest):
            self._commit(fileobj)
        self.done = True
        fsync_dir(self.dest.parent)
        return self.dest

    def _commit(self, fileobj) -> None:
        try:
            if fileobj is not None and not fileobj.closed:
                fileobj.flush()
                os.fsync(fileobj.fileno())
                fileobj.close()
            else:
                with open(self.tmp, "rb+") as f:
                    os.fsync(f.fileno())
            if self.mode is not None:
                os.chmod(self.tmp, self.mode)
            os.replace(self.tmp, self.dest)
        except BaseException:
            if fileobj is not None:
                with contextlib.suppress(OSError):   # closing flushes: on a full disk it fails again
                    fileobj.close()
            self.discard()
            raise

    def discard(self) -> None:
        self.done = True
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, binary: bool = False, mode: int | None = None):
    """`with atomic_write(p) as f: f.write(...)` — `p` gets the whole content or stays as it was."""
    target = AtomicFile(path, suffix=".tmp", mode=mode)
    f = open(target.tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"}))
    try:
        with writing(path):
            yield f
    except BaseException:
        with contextlib.suppress(OSError):            # closing flushes: on a full disk it fails again
            f.close()
        target.discard()
        raise
    target.commit(f)


def write_json_atomic(path: str | os.PathLike, obj: object, mode: int | None = None) -> None:
    with atomic_write(path, mode=mode) as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)


def write_text_atomic(path: str | os.PathLike, text: str, mode: int | None = None) -> None:
    with atomic_write(path, mode=mode) as f:
        f.write(text)


def read_json(path: str | os.PathLike, default: object = None) -> object:
    """The file's JSON, or `default` when it is missing or unreadable (logged, never raised)."""
    try:
        with open(path, "rb") as f:
            return parse_json(f.read())
    except FileNotFoundError:
        return default
    except (OSError, JsonInputError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return default
