"""Plugin discovery and the registries it fills.

Discovery scans the `loradeck.plugins` entry-point group with one try per plugin: a plugin whose
module fails to import, whose manifest is malformed, or whose ids clash with another plugin's is
recorded with its error and skipped; the others keep working, and discovery itself never raises.
Contributions name their code with "module:attr" strings that are imported only when first used
(`resolve`), and a failure there raises PluginLoadError naming the plugin and marks it broken, as
does a plugin that raises when called (recorded by the callers: formats/registry.py). `check()`
resolves and tries everything at once, for `loradeck plugins` and the Plugins dialog.
"""
from __future__ import annotations

import importlib
import importlib.metadata as md
import logging
import pkgutil
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

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

    def record_error(self, message: str) -> None:
        """Note something that went wrong with this plugin (once), for `loradeck plugins` and the dialog."""
        if message not in self.errors:
            self.errors.append(message)

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
        return pkgutil.resolve_name(self.value)


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
        try:
            dist = getattr(ep, "dist", None)
            eps.append(_EntryPointLike(str(ep.name), str(ep.value),
                                       getattr(dist, "name", None) if dist else None,
                                       getattr(dist, "version", None) if dist else None))
        except Exception as exc:  # a damaged dist-info must not stop discovery
            log.warning("skipping an unreadable entry point of %s: %s", group, exc)
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
        except BaseException as exc:  # ValueError as a rule; anything from a hostile object
            if isinstance(exc, KeyboardInterrupt):
                raise
            record.errors.append(f"bad manifest: {_describe(exc, with_type=not isinstance(exc, ValueError))}")
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
        try:
            obj = pkgutil.resolve_name(ref)
        except BaseException as exc:  # any failure inside a plugin is the plugin's (SystemExit too)
            if isinstance(exc, KeyboardInterrupt):
                raise
            msg = f"cannot load '{ref}': {type(exc).__name__}: {exc}"
            record.record_error(msg)
            raise PluginLoadError(f"plugin '{record.name}' ({record.distribution or 'unknown distribution'}): "
                                  f"{msg}") from None
        with self._lock:
            self._resolved[ref] = obj
        return obj

    def format_function(self, format_id: str, which: str):
        """A format's `sniff` or `read`, resolved; PluginLoadError (and the plugin marked broken) when
        the reference does not resolve to something callable."""
        contrib, record = self.formats[format_id]
        ref = getattr(contrib, which)
        fn = self.resolve(ref, record)
        if not callable(fn):
            msg = f"'{ref}' ({which} of format '{format_id}') is a {type(fn).__name__}, not a function"
            record.record_error(msg)
            raise PluginLoadError(f"plugin '{record.name}': {msg}")
        return fn

    def architecture_table(self, arch_id: str):
        contrib, record = self.architectures[arch_id]
        return self.resolve(contrib.table, record)

    def broken(self) -> list[PluginRecord]:
        return [p for p in self.plugins if not p.ok]

    def check(self) -> list[PluginRecord]:
        """Resolve every contribution and call each format's `sniff` on an empty file and an empty
        folder (it must answer 0 there, cheaply, without raising), recording what fails on its
        plugin; returns every plugin. Errors already met in this process stay listed."""
        from ..arch.registry import find_archs  # checks tables (type, id) and records failures

        for arch_id in list(self.architectures):
            try:
                find_archs(arch_id=arch_id, registry=self)
            except Exception as exc:  # recorded on the plugin record
                log.debug("architecture %s: %s", arch_id, exc)
        with tempfile.TemporaryDirectory(prefix="loradeck-plugin-check-") as tmp:
            probes = [Path(tmp) / "empty", Path(tmp) / "empty.bin"]
            probes[0].mkdir()
            probes[1].write_bytes(b"")
            for fmt_id in list(self.formats):
                try:
                    sniff = self.format_function(fmt_id, "sniff")
                    self.format_function(fmt_id, "read")
                except PluginLoadError:
                    continue                        # recorded by format_function
                for probe in probes:
                    try:
                        sniff_score(self, fmt_id, sniff, probe)
                    except PluginLoadError:
                        break
        return list(self.plugins)


def _describe(exc: BaseException, with_type: bool = True) -> str:
    """An exception as text, even when its own __str__ is broken (it comes from plugin code)."""
    try:
        text = str(exc)
    except Exception:
        text = "(its message cannot be shown)"
    return f"{type(exc).__name__}: {text}" if with_type else text


def sniff_score(registry: PluginRegistry, fmt_id: str, sniff, path: Path) -> float:
    """Call a format's `sniff` and check its answer is a number in [0, 1]; anything else (an exception
    included) is recorded on the plugin and raised as PluginLoadError."""
    try:
        score = sniff(Path(path))
    except Exception as exc:  # a plugin bug must not stop detection
        problem = f"raised {type(exc).__name__}: {exc}"
    else:
        if not isinstance(score, bool) and isinstance(score, (int, float)) and 0 <= score <= 1:   # NaN fails too
            return float(score)
        problem = f"returned {score!r}, not a score between 0 and 1"
    record = registry.formats[fmt_id][1]
    msg = f"sniff of format '{fmt_id}' {problem}"
    record.record_error(msg)
    raise PluginLoadError(f"plugin '{record.name}': {msg}")


def discover(group: str = GROUP, entry_points: Iterable | None = None,
             use_builtin_fallback: bool = True) -> PluginRegistry:
    """Find every plugin of `group`. Never raises because of a plugin."""
    try:
        eps = list(entry_points) if entry_points is not None else _entry_points(group)
    except Exception as exc:  # a damaged installation: fall back to the built-ins
        log.warning("cannot list the %s entry points (%s); using the built-in plugins only", group, exc)
        eps = []
    if use_builtin_fallback and entry_points is None and group == GROUP:
        present = {ep.value for ep in eps}
        if not present & set(BUILTIN_ENTRY_POINTS.values()):
            log.warning("no built-in plugin entry points found (bundled app?); using the built-in list")
            eps += [_EntryPointLike(n, v, "loradeck", None) for n, v in BUILTIN_ENTRY_POINTS.items()]
    registry = PluginRegistry()
    # Built-ins first, so a third-party plugin can never take over one of their ids; then by name,
    # so which of two clashing third-party plugins wins does not depend on install order.
    builtin = set(BUILTIN_ENTRY_POINTS.values())
    for ep in sorted(eps, key=lambda e: (e.value not in builtin, str(e.name), str(e.value))):
        record = PluginRecord(name=str(ep.name), target=str(ep.value),
                              distribution=getattr(ep, "dist_name", None),
                              version=getattr(ep, "dist_version", None))
        try:
            obj = ep.load()
        except BaseException as exc:  # includes SystemExit from a hostile plugin
            if isinstance(exc, KeyboardInterrupt):
                raise
            record.errors.append(f"import failed: {_describe(exc)}")
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
