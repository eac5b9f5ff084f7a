"""Adapter names in requests -> the files the engine loads, and the user's saved mix presets.

Names are looked up, in order, in the adapter library (by id, then by name), among the demo adapters
(their prebuilt llama.cpp GGUFs, so nothing is converted), and, when allowed, as a file or folder path.
The library index is re-read on every lookup, so adapters installed while the server runs are usable
at once. The library package is optional here: without it (or with a broken library) the demo
adapters and paths still work.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..mix_presets import MixEntry, PresetStore

log = logging.getLogger(__name__)

_DEFAULT = object()


@dataclass(frozen=True)
class ResolvedAdapter:
    name: str                  # what the request called it (or the library name)
    path: Path                 # what the engine loads
    source: str                # "library" | "demo" | "path"
    id: str = ""               # library id, demo name, or the path
    format: str = ""
    description: str = ""


class UnknownAdapter(LookupError):
    def __init__(self, name: str, known: list[str], why: str = ""):
        self.name, self.known = name, known
        hint = f"; available: {', '.join(known)}" if known else "; the library is empty"
        super().__init__(f"unknown adapter '{name}'{(' (' + why + ')') if why else ''}{hint}")


class AdapterResolver:
    def __init__(self, library=_DEFAULT, *, include_demo: bool = True, allow_paths: bool = True,
                 presets_path: Path | None = None):
        """`library`: a Library, None for none, or (default) the user's library."""
        self._library = library
        self.include_demo = include_demo
        self.allow_paths = allow_paths       # off when the server is reachable from other machines
        self._presets_path = presets_path

    # -- sources -----------------------------------------------------------------------------------
    def _open_library(self):
        if self._library is _DEFAULT:
            from ..library import Library
            try:
                self._library = Library()
            except Exception as exc:  # a broken library must not stop the server
                log.warning("the adapter library cannot be opened: %s", exc)
                return None                  # retried on the next request
        return self._library

    def library_entries(self) -> list[ResolvedAdapter]:
        lib = self._open_library()
        if lib is None:
            return []
        try:
            entries = lib.list()
        except Exception as exc:
            log.warning("the adapter library cannot be read: %s", exc)
            return []
        return [ResolvedAdapter(e.name, Path(e.path), "library", e.id, e.format, e.notes or "")
                for e in entries if not e.missing]

    def demo_entries(self) -> list[ResolvedAdapter]:
        if not self.include_demo:
            return []
        from .. import demo
        try:
            return [ResolvedAdapter(a.name, demo.demo_lora_gguf(a.name), "demo", a.name, a.format, a.description)
                    for a in demo.demo_adapters()]
        except Exception as exc:  # missing demo files: just no demo adapters
            log.warning("demo adapters unavailable: %s", exc)
            return []

    def entries(self) -> list[ResolvedAdapter]:
        """Everything a request can name: library adapters first, then the demo ones."""
        return self.library_entries() + self.demo_entries()

    # -- lookup ------------------------------------------------------------------------------------
    def resolve(self, name: str) -> ResolvedAdapter:
        lib = self.library_entries()
        for e in lib:
            if e.id == name:
                return e
        named = [e for e in lib if e.name == name]
        if len(named) > 1:
            raise UnknownAdapter(name, [e.id for e in named], "several library adapters have this name; use an id")
        if named:
            return named[0]
        demos = self.demo_entries()
        for e in demos:
            if e.name == name:
                return e
        if self.allow_paths and ("/" in name or "\\" in name or Path(name).suffix):
            p = Path(name).expanduser()
            if p.exists():
                return ResolvedAdapter(p.stem if p.is_file() else p.name, p, "path", str(p))
        raise UnknownAdapter(name, sorted({e.name for e in lib + demos}))

    # -- presets -----------------------------------------------------------------------------------
    def presets(self) -> dict[str, list[MixEntry]]:
        """The saved mixes, re-read each time (the desktop app may save one while the server runs)."""
        return PresetStore(self._presets_path).all()

    def resolve_preset_entry(self, entry: MixEntry) -> ResolvedAdapter:
        """A preset entry -> its adapter: by library id, then name, then path."""
        for key in (entry.adapter_id, entry.name):
            if key:
                try:
                    return self.resolve(key)
                except UnknownAdapter:
                    pass
        path = Path(entry.path)
        if entry.path and path.exists():
            return ResolvedAdapter(entry.name or path.name, path, "path", str(path))
        raise UnknownAdapter(entry.name or entry.adapter_id or "?",
                             sorted({e.name for e in self.entries()}), "named by the preset, no longer installed")
