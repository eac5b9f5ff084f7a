"""Plugin discovery and the registries it fills.

Discovery scans the `loradeck.plugins` entry-point group with one try per plugin: a plugin whose
module fails to import, whose manifest is malformed, or whose ids clash with another plugin's is
recorded with its error and skipped; the others keep working. Contributions name their code with
"module:attr" strings that are imported only when first used (`resolve`), and a failure there
raises PluginLoadError naming the plugin and marks it broken.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import PluginLoadError
from .manifest import ArchitectureContribution, FormatContribution, PluginManifest, validate_manifest

log = logging.getLogger(__name__)

GROUP = "loradeck.plugins"

# Used only when no entry point of ours is visible at all: frozen/bundled apps have lost
# dist-info (and so entry points) before. Same names and targets as pyproject.toml.
BUILTIN_ENTRY_POINTS = {
    "architectures": "loradeck_architectures:MANIFEST",
    "peft": "loradeck_format_peft:MANIFEST",
    "ludwig": "loradeck_format_ludwig:MANIFEST",
    "kohya": "loradeck_format_kohya:MANIFEST",
    "gguf": "loradeck_format_gguf:MANIFEST",
}


@dataclass
class PluginRecord:
    """One discovered plugin: where it came from, what it offers, and what went wrong (if anything)."""

    name: str                              # entry-point name
    target: str                            # "module:attr" of the manifest
    distribution: str | None = None
    version: str | None = None
    manifest: PluginManifest | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.errors

    def as_dict(self) -> dict:
        m = self.manifest
        return {
            "name": self.name,
            "title": m.name if m else None,
            "distribution": self.distribution,
            "version": self.version,
            "target": self.target,
            "formats": [f.id for f in m.formats] if m else [],
            "architectures": [a.id for a in m.architectures] if m else [],
            "ok": self.ok,
            "errors": list(self.errors),
        }


@dataclass
class _EntryPointLike:
    name: str
    value: str
    dist_name: str | None = None
    dist_version: str | None = None

    def load(self):
        module, _, attr = self.value.partition(":")
        obj = importlib.import_module(module)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
        return obj


PLUGIN_PATH_ENV = "LORADECK_PLUGIN_PATH"


def add_plugin_path() -> None:
    """Put the folders of LORADECK_PLUGIN_PATH (separated by os.pathsep) on sys.path as site folders, so
    plugin distributions installed there with `pip install --target DIR` are found — in any install,
    not only the packaged app whose launcher does the same before Python starts."""
    import os
    import site
    import sys
    for folder in os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep):
        folder = os.path.expanduser(folder.strip())
        if folder and os.path.isdir(folder) and os.path.abspath(folder) not in map(os.path.abspath, sys.path):
            site.addsitedir(folder)
            importlib.invalidate_caches()


def _entry_points(group: str) -> list[_EntryPointLike]:
    add_plugin_path()
    eps = []
    for ep in md.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        eps.append(_EntryPointLike(ep.name, ep.value,
                                   getattr(dist, "name", None) if dist else None,
                                   getattr(dist, "version", None) if dist else None))
    # The same distribution can be visible twice (editable install + a copy on sys.path); keep one.
    unique: dict[tuple[str, str], _EntryPointLike] = {}
    for ep in eps:
        unique.setdefault((ep.name, ep.value), ep)
    return list(unique.values())


class PluginRegistry:
    """What the plugins contribute: format and architecture entries, each tied to its plugin."""

    def __init__(self) -> None:
        self.plugins: list[PluginRecord] = []
        self.formats: dict[str, tuple[FormatContribution, PluginRecord]] = {}
        self.architectures: dict[str, tuple[ArchitectureContribution, PluginRecord]] = {}
        self._resolved: dict[str, object] = {}
        self._lock = threading.Lock()

    # -- building ---------------------------------------------------------------------------
    def add(self, record: PluginRecord, manifest_obj: object) -> None:
        """Validate a loaded manifest and register its contributions (errors go into the record)."""
        self.plugins.append(record)
        try:
            manifest = validate_manifest(manifest_obj)
        except ValueError as exc:
            record.errors.append(f"bad manifest: {exc}")
            return
        record.manifest = manifest
        clashes = []
        for f in manifest.formats:
            if f.id in self.formats:
                clashes.append(f"format id '{f.id}' is already provided by plugin "
                               f"'{self.formats[f.id][1].name}'")
        for a in manifest.architectures:
            if a.id in self.architectures:
                clashes.append(f"architecture id '{a.id}' is already provided by plugin "
                               f"'{self.architectures[a.id][1].name}'")
        if clashes:
            # Refuse the whole plugin: half of a plugin is harder to reason about than none.
            record.errors.extend(f"duplicate: {c} (plugin '{record.name}' skipped)" for c in clashes)
            return
        for f in manifest.formats:
            self.formats[f.id] = (f, record)
        for a in manifest.architectures:
            self.architectures[a.id] = (a, record)

    # -- using ------------------------------------------------------------------------------
    def resolve(self, ref: str, record: PluginRecord) -> object:
        """Import a "module:attr" reference of a plugin, once; failures name the plugin."""
        with self._lock:
            if ref in self._resolved:
                return self._resolved[ref]
        module, _, attr = ref.partition(":")
        try:
            obj = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except Exception as exc:  # noqa: BLE001 - any failure inside a plugin is the plugin's
            msg = f"cannot load '{ref}': {type(exc).__name__}: {exc}"
            if msg not in record.errors:
                record.errors.append(msg)
            raise PluginLoadError(f"plugin '{record.name}' ({record.distribution or 'unknown distribution'}): "
                                  f"{msg}") from exc
        with self._lock:
            self._resolved[ref] = obj
        return obj

    def format_function(self, format_id: str, which: str):
        contrib, record = self.formats[format_id]
        return self.resolve(getattr(contrib, which), record)

    def architecture_table(self, arch_id: str):
        contrib, record = self.architectures[arch_id]
        return self.resolve(contrib.table, record)

    def broken(self) -> list[PluginRecord]:
        return [p for p in self.plugins if not p.ok]


def discover(group: str = GROUP, entry_points: Iterable | None = None,
             use_builtin_fallback: bool = True) -> PluginRegistry:
    """Find every plugin of `group`. Never raises because of a plugin."""
    eps = list(entry_points) if entry_points is not None else _entry_points(group)
    if use_builtin_fallback and entry_points is None and group == GROUP:
        present = {ep.value for ep in eps}
        if not present & set(BUILTIN_ENTRY_POINTS.values()):
            log.warning("no built-in plugin entry points found (bundled app?); using the built-in list")
            eps += [_EntryPointLike(n, v, "loradeck", None) for n, v in BUILTIN_ENTRY_POINTS.items()]
    registry = PluginRegistry()
    # Built-ins first, so a third-party plugin can never take over one of their ids; then by name,
    # so which of two clashing third-party plugins wins does not depend on install order.
    builtin = set(BUILTIN_ENTRY_POINTS.values())
    for ep in sorted(eps, key=lambda e: (e.value not in builtin, e.name, e.value)):
        record = PluginRecord(name=ep.name, target=ep.value,
                              distribution=getattr(ep, "dist_name", None),
                              version=getattr(ep, "dist_version", None))
        try:
            obj = ep.load()
        except BaseException as exc:  # noqa: BLE001 - includes SystemExit from a hostile plugin
            if isinstance(exc, KeyboardInterrupt):
                raise
            record.errors.append(f"import failed: {type(exc).__name__}: {exc}")
            registry.plugins.append(record)
            log.warning("plugin %s (%s) failed to import: %s", ep.name, ep.value, exc)
            continue
        registry.add(record, obj)
        if record.errors:
            log.warning("plugin %s: %s", ep.name, "; ".join(record.errors))
    return registry


_default: PluginRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> PluginRegistry:
    """The process-wide registry, discovered on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = discover()
        return _default


def reset_default_registry() -> None:
    """Forget the discovered plugins (tests; after installing a plugin at run time)."""
    global _default
    with _default_lock:
        _default = None
