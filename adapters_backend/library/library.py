"""The user's adapter library: an index plus one folder per adapter, safe against crashes and
concurrent processes.

Layout under the root (default <data dir>/library):
    index.json               every entry (store.py); a summary of adapters/, rebuilt when lost
    .lock                    held while the index or adapters/ change
    adapters/<id>/           the adapter's files (or only entry.json when it references the HF cache)
    adapters/<id>/entry.json the entry again, to rebuild a lost index
    .staging/<token>/ + .lock + .commit   an install in progress (recovery.py)
    .trash/                  a remove in progress

Install: validate the source, copy it into a staging folder, validate the copy, then, holding the
lock, write a commit marker, rename the staging folder into adapters/ and write the index. A crash
before the index write leaves a folder the index does not name, and a dead staging lock whose
marker names it: opening the library deletes that folder, so the library is back to "before".
Remove moves the folder to .trash/, writes the index, then deletes it. Nothing else ever deletes
an adapter folder (see recovery.py).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from ..atomic import write_json_atomic
from ..disk_space import check_room, writing
from ..errors import LibraryError
from ..jobs import JobContext
from ..paths import data_dir, unsafe_name_reason
from .entry import ENTRY_FILE, LibraryEntry
from .lock import FileLock, LockTimeout
from .recovery import COMMIT_SUFFIX, LOCK_SUFFIX, recover
from .stage import stage_copy
from .store import IndexStore

log = logging.getLogger(__name__)


def default_root() -> Path:
    return data_dir() / "library"


def index_identity(root: Path | None = None) -> tuple[int, int, int] | None:
    """The library index file's identity (inode, size, modification time): it changes whenever the
    library does, whichever process changed it (`loradeck install` in a terminal while the app is
    open); None while there is no index."""
    try:
        st = os.stat(IndexStore(root or default_root()).path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class Library:
    def __init__(self, root: Path | None = None, lock_timeout: float = 30.0):
        self.root = Path(root) if root is not None else default_root()
        self.root.mkdir(parents=True, exist_ok=True)
        self.store = IndexStore(self.root)
        self.staging = self.root / ".staging"
        self.trash = self.root / ".trash"
        self.lock_timeout = lock_timeout
        self.problems: list[str] = []   # what opening found (rebuilt index, missing folders); shown to the user
        self._recover()

    # -- locking and recovery ----------------------------------------------------------------------
    def _locked(self) -> FileLock:
        lock = FileLock(self.root / ".lock", timeout=self.lock_timeout)
        try:
            lock.acquire()
        except LockTimeout:
            raise LibraryError(f"{self.root / '.lock'}: the library is still locked by another LoRA Deck process "
                               f"after {self.lock_timeout:.0f} s; try again when it has finished") from None
        return lock

    def _recover(self) -> None:
        """Repair what a crashed process or a lost index left (recovery.py); report the rest."""
        lock = self._locked()
        try:
            entries = self.store.load(self.problems, locked=True)
            if recover(self.store, self.staging, self.trash, entries, self.problems):
                self.store.save(entries)
            for e in entries.values():
                if not e.path.exists():
                    self.problems.append(f"'{e.name}' ({e.id}): its files are gone ({e.path}); "
                                         f"remove it with `loradeck library remove {e.id}` or install it again")
        finally:
            lock.release()

    # -- reading -----------------------------------------------------------------------------------
    def _entries(self) -> dict[str, LibraryEntry]:
        entries = self.store.load()
        for e in entries.values():
            e.missing = not e.path.exists()
        return entries

    def list(self) -> list[LibraryEntry]:
        return list(self._entries().values())

    def get(self, key: str) -> LibraryEntry:
        """By id, else by (unique) name."""
        return self._find(self._entries(), key)

    @staticmethod
    def _find(entries: dict[str, LibraryEntry], key: str) -> LibraryEntry:
        if key in entries:
            return entries[key]
        named = [e for e in entries.values() if e.name == key]
        if len(named) == 1:
            return named[0]
        if named:
            raise LibraryError(f"several adapters are named '{key}' ({', '.join(e.id for e in named)}); use an id")
        raise LibraryError(f"no adapter '{key}' in the library")

    # -- install -----------------------------------------------------------------------------------
    def install(self, source, name: str | None = None, ctx: JobContext | None = None,
                provenance: dict | str | None = None, copy: bool = True) -> LibraryEntry:
        """Add an adapter (folder, .zip, .safetensors, .gguf). It is read and validated before anything
        changes; the same content (sha256) already installed returns the existing entry.
        `copy=False` records the path where it is (the HF cache) instead of copying it."""
        from ..formats.registry import content_sha256, content_size, read_adapter, unpack_if_archive

        ctx = ctx or JobContext()
        prov = {"source": provenance} if isinstance(provenance, str) else dict(provenance or {})
        original = Path(source).expanduser()
        adapter = read_adapter(original)          # raises AdapterFormatError naming the file
        target = unpack_if_archive(original)
        ctx.check()
        sha = content_sha256(target)
        existing = self._by_sha(self._entries(), sha)
        if existing is not None:
            return existing
        ctx.check()
        entry = LibraryEntry(
            id="", name=name or prov.get("name") or _default_name(original), path=target,
            sha256=sha, size=content_size(target), source=prov.get("source") or f"local:{original.resolve()}",
            license=prov.get("license") or _str(adapter.metadata.get("license")),
            base_model=prov.get("base_model") or adapter.base_model,
            installed=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            stored="copy" if copy else "reference", **_adapter_facts(adapter))

        if copy:                               # the whole adapter, before its first byte
            check_room(self.root, entry.size, f"the library's copy of {original.name}")
        tmp = self.staging / uuid.uuid4().hex
        stage_lock = FileLock(tmp.with_suffix(LOCK_SUFFIX), timeout=0)
        with writing(self.staging):           # a read-only or full disk is named, not a traceback
            self.staging.mkdir(parents=True, exist_ok=True)
            lock = self._locked()     # so no other process's recovery sees the folder before its lock
            try:
                stage_lock.acquire()  # marks the staging folder as alive for other processes' recovery
                tmp.mkdir()
            except BaseException:
                stage_lock.release()
                raise
            finally:
                lock.release()
        try:
            if copy:
                payload = stage_copy(target, tmp, ctx)
                if content_sha256(payload) != sha:
                    raise LibraryError(f"{original}: the files changed while they were being copied; try again")
                read_adapter(payload)             # the copy itself must read back
            ctx.check()
            return self._commit(tmp, entry, target.name if copy else None)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.with_suffix(COMMIT_SUFFIX).unlink(missing_ok=True)
            stage_lock.release()
            tmp.with_suffix(LOCK_SUFFIX).unlink(missing_ok=True)

    def _commit(self, tmp: Path, entry: LibraryEntry, payload_name: str | None) -> LibraryEntry:
        lock = self._locked()
        try:
            entries = self.store.load(self.problems, locked=True)
            existing = self._by_sha(entries, entry.sha256)   # another process may have just installed it
            if existing is not None:
                return existing
            self.store.adapters.mkdir(parents=True, exist_ok=True)
            taken = set(entries) | {p.name.lower() for p in self.store.adapters.iterdir()}
            entry.id = _unique_id(entry.name, taken)
            final = self.store.adapters / entry.id
            if payload_name is not None:
                entry.path = final / payload_name
            write_json_atomic(tmp / ENTRY_FILE, entry.to_json(self.root))
            # Names the folder this install is about to create: if the process dies before the index
            # write below, recovery removes exactly that folder (and nothing else).
            write_json_atomic(tmp.with_suffix(COMMIT_SUFFIX), {"id": entry.id, "sha256": entry.sha256})
            os.replace(tmp, final)
            entries[entry.id] = entry
            try:
                self.store.save(entries)             # the install happens here, atomically
            except BaseException:
                shutil.rmtree(final, ignore_errors=True)
                raise
        finally:
            lock.release()
        log.info("installed %s as %s", entry.source, entry.id)
        return entry

    @staticmethod
    def _by_sha(entries: dict[str, LibraryEntry], sha: str) -> LibraryEntry | None:
        for e in entries.values():
            if e.sha256 == sha and e.path.exists():
                return e
        return None

    # -- changes -----------------------------------------------------------------------------------
    def remove(self, key: str) -> None:
        lock = self._locked()
        try:
            entries = self.store.load(self.problems, locked=True)
            e = self._find(entries, key)
            folder, doomed = self.store.adapters / e.id, None
            if folder.exists():
                # Out of adapters/ first, so a crash before the index write cannot leave a folder that
                # would be listed again; recovery finishes a remove whose folder is in .trash/.
                self.trash.mkdir(exist_ok=True)
                doomed = self.trash / f"{e.id}-{uuid.uuid4().hex[:8]}"
                os.replace(folder, doomed)
            del entries[e.id]
            try:
                self.store.save(entries)             # removed from here on
            except BaseException:
                if doomed is not None:
                    os.replace(doomed, folder)
                raise
            if doomed is not None:
                shutil.rmtree(doomed, ignore_errors=True)
        finally:
            lock.release()

    def rename(self, key: str, new_name: str) -> LibraryEntry:
        new_name = new_name.strip()
        if not new_name:
            raise LibraryError("the new name is empty")
        return self._update(key, name=new_name)

    def set_notes(self, key: str, notes: str) -> LibraryEntry:
        return self._update(key, notes=notes)

    def _update(self, key: str, **changes) -> LibraryEntry:
        lock = self._locked()
        try:
            entries = self.store.load(self.problems, locked=True)
            e = self._find(entries, key)
            for k, v in changes.items():
                setattr(e, k, v)
            self.store.save(entries)
            side = self.store.adapters / e.id
            if side.is_dir():
                write_json_atomic(side / ENTRY_FILE, e.to_json(self.root))
            return e
        finally:
            lock.release()


def _str(v) -> str | None:
    return v if isinstance(v, str) and v else None


def _default_name(path: Path) -> str:
    name = path.name
    for ext in (".zip", ".safetensors", ".gguf"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


def _unique_id(name: str, taken) -> str:
    """A folder name for `name`: lowercase, safe on every platform, not in `taken` (ids and the
    lowercased names of folders already in adapters/, kept or not)."""
    base = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-.")[:60].strip("-.") or "adapter"
    if unsafe_name_reason(base):          # "con", "nul.json", …
        base = f"adapter-{base}"
    cand, n = base, 2
    while cand in taken:
        cand, n = f"{base}-{n}", n + 1
    return cand


def _adapter_facts(adapter) -> dict:
    """format, variant, the most common rank and its alpha, and the ranges of both over the modules
    (an adapter with a rank pattern is not "r=8") — what the library list shows."""
    mods = list(adapter.modules.values())
    ranks = Counter(m.rank for m in mods if m.rank)
    rank = ranks.most_common(1)[0][0] if ranks else None
    alpha = next((m.alpha for m in mods if m.rank == rank and m.alpha is not None), None)
    alphas = [float(m.alpha) for m in mods if m.rank and m.alpha is not None]
    variant = "+".join(adapter.variants) + (" (aLoRA)" if adapter.alora_invocation_tokens else "")
    return {"format": adapter.format_id, "variant": variant, "rank": rank,
            "alpha": float(alpha) if alpha is not None else None,
            "rank_range": [min(ranks), max(ranks)] if ranks else None,
            "alpha_range": [min(alphas), max(alphas)] if alphas else None}
