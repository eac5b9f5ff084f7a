"""The library's index file: one JSON document, replaced atomically, rebuilt from the per-adapter
copies (adapters/<id>/entry.json) when it is corrupt or missing.

The index is a summary of the adapter folders, never their owner: a missing or empty index hides
nothing and deletes nothing (Library's recovery lists every folder again).

Readers never lock: a write is a temp file + fsync + os.replace, so a reader sees the old or the
new index, never half of one. Writers hold the library lock (see Library) around read-modify-write.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from ..atomic import write_json_atomic
from .entry import ENTRY_FILE, LibraryEntry

log = logging.getLogger(__name__)
SCHEMA = "loradeck.library/1"


class IndexStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / "index.json"
        self.adapters = self.root / "adapters"

    def load(self, problems: list[str] | None = None, locked: bool = False) -> dict[str, LibraryEntry]:
        """{id: entry}. A corrupt or missing index is rebuilt from the adapter folders; the caller
        must hold the library lock for the rebuilt index to be saved (without it, the rebuilt view
        is returned only)."""
        if not self.path.exists():   # lost (a sync tool, a restore, a tidy-up) or never written yet
            return self._rebuild(None, problems, locked)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
                raise ValueError("no 'entries' list")
            entries: dict[str, LibraryEntry] = {}
            for raw in data["entries"]:
                e = LibraryEntry.from_json(raw, self.root)
                entries[e.id] = e
            return entries
        except (OSError, UnicodeDecodeError, ValueError, TypeError, RecursionError) as exc:
            return self._rebuild(exc, problems, locked)

    def _rebuild(self, exc: Exception | None, problems: list[str] | None, locked: bool) -> dict[str, LibraryEntry]:
        """`exc` is why the index could not be read, or None when there is no index file."""
        if not locked:   # only the lock holder may move the file aside and write the rebuilt one
            return self.scan()
        backup = None
        if exc is not None:
            backup = self.path.with_name(f"index.json.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                shutil.copy2(self.path, backup)
            except OSError:
                backup = None
        entries = self.scan()
        n = f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}"
        if exc is not None:
            msg = (f"{self.path}: the library index was unreadable ({exc}); "
                   f"{'a copy is at ' + str(backup) + '; ' if backup else ''}rebuilt {n} from the adapter folders")
        elif entries:
            msg = f"{self.path}: the library index was missing; rebuilt {n} from the adapter folders"
        else:
            msg = None    # a new library
        if msg:
            log.warning("%s", msg)
            if problems is not None:
                problems.append(msg)
        self.save(entries)
        return entries

    def read_folder_entry(self, folder: Path, named_for_it: bool = True) -> LibraryEntry | None:
        """The entry an adapter folder records about itself (entry.json), or None when it has no
        readable one or (with `named_for_it`) the folder is not named for its id."""
        try:
            raw = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
            e = LibraryEntry.from_json(raw, self.root)
        except (OSError, UnicodeDecodeError, ValueError, TypeError, RecursionError):
            return None
        return e if e.id == folder.name or not named_for_it else None

    def scan(self) -> dict[str, LibraryEntry]:
        """Entries recovered from each adapter folder's own entry.json (folders without one are
        left for the caller to report)."""
        out: dict[str, LibraryEntry] = {}
        if not self.adapters.is_dir():
            return out
        for folder in sorted(self.adapters.iterdir()):
            e = self.read_folder_entry(folder) if folder.is_dir() else None
            if e is not None:
                out[e.id] = e
        return out

    def save(self, entries: dict[str, LibraryEntry]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, {"schema": SCHEMA,
                                      "entries": [e.to_json(self.root) for e in entries.values()]})
