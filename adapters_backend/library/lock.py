"""Inter-process locks for the library (and the Hub's blob downloads), from the `filelock` package.

Its native locks (flock on POSIX, LockFileEx on Windows) are released by the OS when the holding
process dies, SIGKILL included, so a crash never leaves the library locked; that is also how a
staging folder of a live install is told from one a killed install left behind.
"""
from __future__ import annotations

from pathlib import Path

from filelock import FileLock
from filelock import Timeout as LockTimeout

__all__ = ["FileLock", "LockTimeout", "held_by_a_live_process"]


def held_by_a_live_process(path: Path) -> bool:
    """True while some live process (this one included) holds the lock on `path`; False when the
    file is absent or its holder is gone."""
    path = Path(path)
    if not path.exists():
        return False
    probe = FileLock(path, timeout=0)
    try:
        probe.acquire(blocking=False)
    except LockTimeout:
        return True
    probe.release()
    return False
