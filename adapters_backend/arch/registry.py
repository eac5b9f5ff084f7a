"""Find an architecture table among the plugins' contributions.

Tables are resolved lazily (first use) through the plugin registry; a table that fails to import or
is not an ArchSpec is skipped and its plugin is marked broken (the error is recorded there), so one
bad third-party table never hides the others.
"""
from __future__ import annotations

import logging

from ..errors import PluginLoadError
from ..plugins.manager import PluginRegistry, default_registry
from .spec import ArchSpec

log = logging.getLogger(__name__)


def _load(registry: PluginRegistry, arch_id: str) -> ArchSpec | None:
    contrib, record = registry.architectures[arch_id]
    try:
        spec = registry.architecture_table(arch_id)
    except PluginLoadError as exc:
        log.warning("architecture %s skipped: %s", arch_id, exc)
        return None
    if not isinstance(spec, ArchSpec):
        msg = f"architecture table '{contrib.table}' is a {type(spec).__name__}, not an ArchSpec"
        record.record_error(msg)
        log.warning("architecture %s skipped: %s", arch_id, msg)
        return None
    if spec.id != arch_id:
        msg = f"architecture table '{contrib.table}' has id '{spec.id}' but is registered as '{arch_id}'"
        record.record_error(msg)
        log.warning("architecture %s skipped: %s", arch_id, msg)
        return None
    return spec


def all_archs(registry: PluginRegistry | None = None) -> list[ArchSpec]:
    """Every architecture the plugins provide and that loads, built-ins first (discovery order)."""
    registry = registry or default_registry()
    out = []
    for arch_id in list(registry.architectures):
        spec = _load(registry, arch_id)
        if spec is not None:
            out.append(spec)
    return out


def find_archs(model_type: str | None = None, hf_class: str | None = None, gguf_arch: str | None = None,
               arch_id: str | None = None, registry: PluginRegistry | None = None) -> list[ArchSpec]:
    """Every loadable table that matches all the given keys (several for gguf_arch "llama")."""
    registry = registry or default_registry()
    if arch_id is not None and arch_id in registry.architectures:
        spec = _load(registry, arch_id)
        candidates = [spec] if spec is not None else []
    else:
        candidates = all_archs(registry)
    out = []
    for spec in candidates:
        if arch_id is not None and spec.id != arch_id:
            continue
        if model_type is not None and model_type not in spec.hf_model_types:
            continue
        if hf_class is not None and hf_class not in spec.hf_architectures:
            continue
        if gguf_arch is not None and gguf_arch != spec.gguf_arch:
            continue
        out.append(spec)
    return out


def find_arch(model_type: str | None = None, hf_class: str | None = None, gguf_arch: str | None = None,
              registry: PluginRegistry | None = None) -> ArchSpec | None:
    """The first table matching every given key, or None.

    gguf_arch "llama" covers Llama, Mistral and Mixtral; alone it returns the first of them (Llama).
    Use `find_archs` to see them all, or add model_type/hf_class to choose.
    """
    if model_type is None and hf_class is None and gguf_arch is None:
        return None
    found = find_archs(model_type=model_type, hf_class=hf_class, gguf_arch=gguf_arch, registry=registry)
    return found[0] if found else None


def resolve_arch_name(name: str | None, registry: PluginRegistry | None = None) -> ArchSpec | None:
    """A free-form architecture name (LoRA Deck id, HF model_type or class, GGUF arch) → table."""
    if not name:
        return None
    for key in ("arch_id", "model_type", "hf_class", "gguf_arch"):
        found = find_archs(registry=registry, **{key: name})
        if found:
            return found[0]
    lowered = name.lower()
    if lowered != name:
        return resolve_arch_name(lowered, registry)
    return None
