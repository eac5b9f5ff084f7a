"""LoRA Deck's disk caches (converted adapters, unpacked archives, …) stay within a budget.

Each cache folder holds entries named by a key: a file, a folder, or files sharing a name before their
last suffix (`KEY.gguf` with `KEY.json`). Reading an entry marks it used (`mark_used`); after a new one
is written, `trim` removes the least recently used entries until the folder is under its budget. Without
this, every adapter ever converted, and a second copy of every zip ever installed, stayed for good.

Nothing used in the last day is removed, even over budget: another LoRA Deck process (the app beside
`loradeck serve`) may just have been handed it, and a running engine may read it again. Only names
of the folder's own pattern are entries: anything else in it is left alone. Leftovers of writes that
never finished (hidden or `.incomplete` names) go once they are a day old.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

KEEP_RECENT_SECONDS = 24 * 3600
GIB = 1 << 30
# Per cache folder: (budget in bytes, the pattern of its entries' keys).
CACHES = {
    "converted": (4 * GIB, re.compile(r"[0-9a-f]{32}")),            # convert/cache.py
    "unpacked": (2 * GIB, re.compile(r"[0-9a-f]{64}")),             # formats/registry.py (zips)
    "from-pickle": (2 * GIB, re.compile(r"[0-9a-f]{64}")),          # formats/safe_pickle.py
    "lora-derived": (1 * GIB, re.compile(r".+\.layers-[0-9a-f]{24}")),   # engines/adapter_files.py
}
_UNFINISHED = (".incomplete", ".partial", ".tmp", ".head")


@dataclass
class _Entry:
    paths: list[Path] = field(default_factory=list)
    size: int = 0
    used: float = 0.0


def mark_used(path: Path) -> None:
    """Record that a cache entry (file or folder) was just read, so it is trimmed last."""
    try:
        os.utime(path)
    except OSError as exc:          # read-only cache, or gone meanwhile: nothing to keep fresh
        log.debug("cannot mark %s as used: %s", path, exc)


def trim_cache(folder: Path, now: float | None = None) -> list[Path]:
    """`trim` with the budget and pattern of the cache folder's name (CACHES)."""
    budget, pattern = CACHES[Path(folder).name]
    return trim(folder, budget, pattern, now=now)


def trim(folder: Path, budget: int, pattern: re.Pattern, now: float | None = None) -> list[Path]:
    """Remove the least recently used entries of `folder` until it holds at most `budget` bytes,
    never one used within KEEP_RECENT_SECONDS; returns what was removed."""
    now = time.time() if now is None else now
    entries: dict[str, _Entry] = {}
    removed: list[Path] = []
    try:
        children = list(Path(folder).iterdir())
    except OSError:
        return removed
    for child in children:
        try:
            st = child.lstat()
        except OSError:
            continue
        if child.name.startswith(".") or child.name.endswith(_UNFINISHED):
            if now - st.st_mtime > KEEP_RECENT_SECONDS and _remove(child):
                removed.append(child)          # a write that never finished
            continue
        key = child.name if child.is_dir() else child.name.rsplit(".", 1)[0]
        if not pattern.fullmatch(key):
            continue                           # not ours: left alone
        e = entries.setdefault(key, _Entry())
        e.paths.append(child)
        e.size += _size(child, st)
        e.used = max(e.used, st.st_mtime)
    total = sum(e.size for e in entries.values())
    for key, e in sorted(entries.items(), key=lambda kv: kv[1].used):
        if total <= budget:
            break
        if now - e.used < KEEP_RECENT_SECONDS:
            break                              # the rest is newer still
        if all(_remove(p) for p in e.paths):
            removed.extend(e.paths)
            total -= e.size
            log.info("cache %s: removed %s (%.1f MB, last used %.0f h ago)", folder, key, e.size / 1e6,
                     (now - e.used) / 3600)
    return removed


def _size(path: Path, st: os.stat_result) -> int:
    if not path.is_dir() or path.is_symlink():
        return st.st_size
    total = 0
    for root, _dirs, files in os.walk(path):        # does not follow links to folders
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return True
    except OSError as exc:          # open elsewhere (Windows), or a permission: try again next time
        log.debug("cannot remove %s from the cache: %s", path, exc)
        return False
