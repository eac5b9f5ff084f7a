"""What opening the library repairs, holding its lock, after a crash, a kill or a lost index.

The rule: an adapter folder is deleted only by `remove` (finished here if it was interrupted), or
because the install that created it was interrupted — proven by that install's own staging lock,
which the OS released when the process died, and its commit marker naming the folder and its
sha256. Nothing is deleted because the index does not mention it: a folder the index does not list
is listed again from its entry.json, or, without one, kept and reported.

Staging layout, per install (see Library.install): .staging/<token>/ (the copy), <token>.lock
(held while the install lives), <token>.commit ({"id", "sha256"}: written just before the copy
is renamed to adapters/<id>, removed once the index names it).
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

from .entry import LibraryEntry, valid_id
from .lock import held_by_a_live_process
from .store import IndexStore

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
COMMIT_SUFFIX = ".commit"
_TOKEN = re.compile(r"[0-9a-f]{32}")       # uuid4().hex, as Library.install names its staging folder


def recover(store: IndexStore, staging: Path, trash: Path, entries: dict[str, LibraryEntry],
            problems: list[str]) -> bool:
    """Repair what an interrupted process left; True when `entries` changed and must be saved."""
    _clean_staging(store, staging, entries)
    changed = _finish_removes(store, trash, entries)
    changed |= _list_unindexed_folders(store, entries, problems)
    return changed


def _clean_staging(store: IndexStore, staging: Path, entries: dict[str, LibraryEntry]) -> None:
    """Remove what dead installs left in .staging/ (LoRA Deck's own folder: copies, never the user's
    files), undoing a commit one of them had half done; a live install's files are left alone."""
    if not staging.is_dir():
        return
    by_token: dict[str | None, list[Path]] = {}
    for p in staging.iterdir():                   # <token>, <token>.lock, <token>.commit, .<token>.commit.*.tmp
        m = _TOKEN.search(p.name)
        by_token.setdefault(m.group(0) if m else None, []).append(p)
    for token, paths in sorted(by_token.items(), key=lambda kv: kv[0] or ""):
        if token is not None and held_by_a_live_process(staging / (token + LOCK_SUFFIX)):
            continue                              # an install still running in another process
        if token is not None:
            _undo_interrupted_commit(store, staging / (token + COMMIT_SUFFIX), entries)
        for p in paths:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _undo_interrupted_commit(store: IndexStore, marker: Path, entries: dict[str, LibraryEntry]) -> None:
    """A dead install that had renamed its copy into adapters/ but not written the index: remove
    that folder, so the library is as it was before the install."""
    try:
        claim = json.loads(marker.read_text(encoding="utf-8"))
        folder_id, sha = claim["id"], claim["sha256"]
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, RecursionError):
        return
    if not valid_id(folder_id) or folder_id in entries:
        return                                        # the index got it: that install completed
    folder = store.adapters / folder_id
    own = store.read_folder_entry(folder) if folder.is_dir() else None
    if own is None or own.sha256 != sha:
        return                                        # not what that install wrote: leave it alone
    log.info("removing %s: its install was interrupted before the index named it", folder)
    shutil.rmtree(folder, ignore_errors=True)


def _finish_removes(store: IndexStore, trash: Path, entries: dict[str, LibraryEntry]) -> bool:
    """`remove` moves the folder into .trash/, then writes the index, then deletes it: finish one
    that was interrupted after the move."""
    if not trash.is_dir():
        return False
    changed = False
    for doomed in trash.iterdir():
        own = store.read_folder_entry(doomed, named_for_it=False)
        if (own is not None and own.id in entries and entries[own.id].sha256 == own.sha256
                and not (store.adapters / own.id).exists()):
            del entries[own.id]
            changed = True
        shutil.rmtree(doomed, ignore_errors=True)
    shutil.rmtree(trash, ignore_errors=True)
    return changed


def _list_unindexed_folders(store: IndexStore, entries: dict[str, LibraryEntry], problems: list[str]) -> bool:
    """Folders in adapters/ that the index does not name: listed again when they say who they are
    (entry.json), kept and reported when they do not. Never deleted."""
    if not store.adapters.is_dir():
        return False
    relisted, unknown = [], []
    for folder in sorted(store.adapters.iterdir()):
        if folder.name in entries or folder.name.startswith(".") or not folder.is_dir():
            continue
        own = store.read_folder_entry(folder)
        if own is None:
            unknown.append(folder)
        else:
            entries[own.id] = own
            relisted.append(own)
    if relisted:
        names = ", ".join(f"'{e.name}' ({e.id})" for e in relisted)
        problems.append(f"{store.path}: {len(relisted)} adapter folder(s) were not in the library index and are "
                        f"listed again: {names}")
    for folder in unknown:
        problems.append(f"{folder}: this folder in the library is not an installed adapter (it has no readable "
                        f"entry.json); LoRA Deck leaves it as it is. Move it out of the library, or install it "
                        f"again with `loradeck library install PATH`")
    return bool(relisted)
