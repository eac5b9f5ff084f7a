"""Writing to a disk that may be full, read-only or someone else's.

A long write (a merged model, a download, an install) first checks that its disk has room for it,
so a user learns in a second what they would otherwise learn after minutes of writing. A write that
fails anyway (the disk filled meanwhile, a folder turned out read-only) is reported as a
`WriteFailed` naming the file and the reason in words, instead of the operating system's bare
errno; the writers' own clean-up still removes what they had half written.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path

from .errors import BackendError
from .units import format_bytes

# Why a write failed, by errno, for the errors the user can do something about.
_REASONS = {
    errno.ENOSPC: "the disk is full; free some space and try again",
    errno.EROFS: "the disk is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EFBIG: "the file is larger than the system allows here",   # the file system's or a ulimit
    errno.EIO: "the disk reported an input/output error",
    errno.ENOTDIR: "a file is in the way of its folder",
    errno.EEXIST: "a file is in the way of its folder",      # mkdir(exist_ok=True) met a file
    errno.EISDIR: "it is a folder; give a file name",
    errno.EBUSY: "it is in use by the system",
}
if hasattr(errno, "EDQUOT"):                     # not on Windows
    _REASONS[errno.EDQUOT] = "your disk quota is used up; free some space and try again"


class WriteFailed(BackendError, OSError):
    """A file could not be written; the message names it and says why. Also an OSError, so code
    that handles a failed write as one keeps doing so."""

    def __init__(self, path: str | os.PathLike, problem: str, code: int | None = None):
        self.path, self.problem = str(path), problem
        super().__init__(f"cannot write {self.path}: {problem}")
        self.errno = code

    def __str__(self) -> str:
        return self.args[0]


def reason(exc: OSError) -> str | None:
    """The words for an OSError the user can act on (disk full, read-only, …); None for the others."""
    return _REASONS.get(getattr(exc, "errno", None))


def write_failed(path: str | os.PathLike, exc: OSError) -> OSError:
    """`exc`, raised while writing `path`, as a WriteFailed when it is one the user can act on;
    otherwise `exc` itself (a bug or an error of another kind keeps its own type and traceback)."""
    if isinstance(exc, BackendError):
        return exc
    why = reason(exc)
    return exc if why is None else WriteFailed(path, why, exc.errno)


@contextlib.contextmanager
def writing(path: str | os.PathLike):
    """Around code that writes `path` (and only writes): its disk errors become WriteFailed."""
    try:
        yield
    except OSError as exc:
        translated = write_failed(path, exc)
        if translated is exc:
            raise
        raise translated from exc


def check_replaceable(path: str | os.PathLike) -> None:
    """Raise WriteFailed unless `path` is missing, a regular file or a symlink (which a replace swaps,
    leaving its target alone): never a folder, and never a device, pipe or socket (as root, replacing
    /dev/null with a model file broke the whole system)."""
    import stat
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise write_failed(path, exc) from exc
    if stat.S_ISDIR(mode):
        raise WriteFailed(path, "it is a folder; give a file name", errno.EISDIR)
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        raise WriteFailed(path, "it is not a file (a device, a pipe or a socket); give the name of a file",
                          errno.EPERM)


def check_usable_folder(folder: str | os.PathLike) -> None:
    """Raise WriteFailed unless `folder` exists (it is made if missing) and a file can be written in it."""
    import tempfile
    with writing(folder):
        Path(folder).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass


def free_bytes(folder: str | os.PathLike) -> int | None:
    """Free bytes on the disk that holds `folder` (or its nearest existing parent); None if unknown."""
    p = Path(folder).absolute()
    while not p.exists() and p.parent != p:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def check_room(folder: str | os.PathLike, needed: int, what: str) -> None:
    """Raise WriteFailed when the disk of `folder` has less than `needed` bytes free for `what`.
    Unknown free space passes: the write itself will say."""
    free = free_bytes(folder)
    if free is None or free >= needed:
        return
    raise WriteFailed(what, f"it needs {format_bytes(needed)} and the disk holding {folder} has "
                            f"{format_bytes(free)} free; free some space and try again", errno.ENOSPC)
