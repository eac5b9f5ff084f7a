"""An inter-process lock on a file: fcntl.flock on POSIX, msvcrt.locking on Windows.

The OS releases these locks when the process dies (even on SIGKILL), so a crash never leaves the
library locked; that is also how we tell a live install's staging folder from a dead one.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

if os.name == "nt":  # pragma: no cover - exercised on Windows CI only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class LockTimeout(TimeoutError):
    pass


class FileLock:
    """`with FileLock(path, timeout):` — exclusive across processes (and threads using separate objects)."""

    def __init__(self, path: Path, timeout: float = 30.0):
        self.path = Path(path)
        self.timeout = timeout
        self._fd: int | None = None

    def acquire(self, blocking: bool = True) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while not _try_lock(fd):
            if not blocking or time.monotonic() > deadline:
                os.close(fd)
                if blocking:
                    raise LockTimeout(f"{self.path}: still locked by another LoRA Deck process after "
                                      f"{self.timeout:.0f} s")
                return False
            time.sleep(0.02)
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            try:
                _unlock(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def is_locked(path: Path) -> bool:
    """True if a live process holds the lock on `path` (False if the file is absent)."""
    if not Path(path).exists():
        return False
    lock = FileLock(path, timeout=0)
    if lock.acquire(blocking=False):
        lock.release()
        return False
    return True
