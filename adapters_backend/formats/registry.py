"""Find the format plugin that claims a path, and read adapters through it.

Detection is by content: every format plugin's `sniff(path)` looks at headers and returns a score
(0 = not mine); the highest wins. A `.zip` is validated, unpacked once into the cache (keyed by its
sha256) and detected inside. A plugin that raises while sniffing is recorded on its plugin record
and skipped; a plugin that raises something other than a LoRA Deck error while reading is reported
as a format error naming the file and the plugin, never as a crash.
"""
from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path

from ..core.adapter import Adapter
from ..disk_cache import mark_used, trim_cache
from ..errors import AdapterFormatError, BackendError, PluginLoadError
from ..paths import cache_dir
from ..plugins.manager import PluginRegistry, default_registry, sniff_score
from .archive import extract_zip, file_sha256, unpacked_root

log = logging.getLogger(__name__)


def content_sha256(path: Path) -> str:
    """sha256 of a file; for a folder, of its sorted "relative/path\\0<file sha256>\\n" lines
    (hidden files and folders skipped), so the same adapter gives the same hash wherever it lies."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path)
        if any(part.startswith(".") for part in rel.parts):
            continue
        h.update(f"{rel.as_posix()}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def content_size(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()
               and not any(part.startswith(".") for part in f.relative_to(path).parts))


def unpack_if_archive(path: Path) -> Path:
    """A .zip (by content, not name) → its unpacked folder in the cache; anything else unchanged."""
    path = Path(path)
    if not path.is_file():
        return path
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError:
        is_zip = False
    if not is_zip:
        return path
    dest = cache_dir() / "unpacked" / file_sha256(path)
    if dest.exists():
        mark_used(dest)
    else:
        extract_zip(path, dest)
        trim_cache(dest.parent)
    return unpacked_root(dest)


def detect(path: Path, registry: PluginRegistry | None = None) -> list[tuple[float, str]]:
    """Scores of every format plugin for `path`, best first (only positive scores)."""
    registry = registry or default_registry()
    scores = []
    for fmt_id in list(registry.formats):
        try:
            score = sniff_score(registry, fmt_id, registry.format_function(fmt_id, "sniff"), Path(path))
        except PluginLoadError as exc:     # recorded on the plugin; the other formats still answer
            log.warning("%s (while sniffing %s)", exc, path)
            continue
        if score > 0:
            scores.append((score, fmt_id))
    scores.sort(key=lambda s: -s[0])
    return scores


def read_adapter(path: str | os.PathLike, base=None, format_id: str | None = None,
                 registry: PluginRegistry | None = None) -> Adapter:
    """Read any supported adapter (folder, file, .zip) into the canonical form."""
    original = Path(path)
    if not original.exists():
        raise AdapterFormatError(original, "no such file or folder")
    registry = registry or default_registry()
    target = unpack_if_archive(original)
    if format_id is None:
        scores = detect(target, registry)
        if not scores:
            names = ", ".join(c.name for c, _ in registry.formats.values()) or "none installed"
            raise AdapterFormatError(original, f"not a recognised adapter (formats checked: {names})")
        format_id = scores[0][1]
    elif format_id not in registry.formats:
        raise AdapterFormatError(original, f"unknown format '{format_id}' (known: {', '.join(registry.formats)})")
    reader = registry.format_function(format_id, "read")
    try:
        adapter = reader(target, base=base)
    except BackendError:
        raise
    except (MemoryError, RecursionError) as exc:
        raise AdapterFormatError(original, f"too large or too deeply nested to read ({type(exc).__name__})") from None
    except Exception as exc:  # plugin code; report it against the file and the plugin
        record = registry.formats[format_id][1]
        log.exception("format plugin %s failed on %s", record.name, original)
        record.record_error(f"read of format '{format_id}' raised {type(exc).__name__}: {exc} (on {original})")
        raise AdapterFormatError(original, f"the '{record.name}' format plugin failed to read it: "
                                           f"{type(exc).__name__}: {exc}") from None
    if not isinstance(adapter, Adapter):
        raise AdapterFormatError(original, f"format plugin '{format_id}' returned {type(adapter).__name__}, "
                                           "not an Adapter")
    if not adapter.modules:
        raise AdapterFormatError(original, "the adapter contains no adapted modules")
    adapter.metadata.setdefault("source_path", str(original))
    return adapter
