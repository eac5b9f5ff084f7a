"""Cheap identities of files on disk, for the caches keyed on "the same file as before".

A file is the same when its resolved path, size and modification time (in nanoseconds) are: no
content is read, so a key costs one `stat`, and a file replaced in place (a re-download, a re-export,
one part of a split model updated alone) gets a new one. Every cache that remembers work done for a
file (converted adapters, the compatibility checker's base models, the server's compatibility
answers, the engines' loaded adapters and KV snapshots) keys on these, so they agree on what changed.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

FOLDER_FILES_LIMIT = 200      # a folder adapter's identity covers its first files, sorted by name


def stat_identity(path: str | Path) -> tuple[str, int, int]:
    """(resolved path, size, modification time in ns) of a file; OSError when it cannot be stat'ed."""
    p = Path(path)
    st = p.stat()
    return str(p.resolve()), st.st_size, st.st_mtime_ns


def file_identity(path: str | Path) -> str:
    """`stat_identity` as one string."""
    return "|".join(map(str, stat_identity(path)))


def folder_identity(path: str | Path, limit: int = FOLDER_FILES_LIMIT) -> str:
    """A digest of a folder's files' relative names, sizes and modification times."""
    root = Path(path)
    parts = []
    for i, f in enumerate(sorted(p for p in root.rglob("*") if p.is_file())):
        if i >= limit:
            break
        st = f.stat()
        parts.append(f"{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def source_identity(path: str | Path) -> str:
    """An adapter the user picked, a file or a folder: its resolved path and content identity.
    FileNotFoundError when it is neither."""
    src = Path(path).expanduser()
    if src.is_file():
        return file_identity(src)
    if src.is_dir():
        return f"{src.resolve()}|{folder_identity(src)}"
    raise FileNotFoundError(f"adapter not found: {src}")
