"""Plugin manifests: plain data a plugin exposes through the `loradeck.plugins` entry-point group.

A plugin package's `__init__.py` holds only a MANIFEST (this dataclass, or a dict of the same shape);
the code it points to is named with "module:attr" strings and imported the first time it is needed,
so discovering plugins imports nothing heavy.

    MANIFEST = PluginManifest(
        name="My formats",
        formats=[FormatContribution(id="acme.lora", name="ACME LoRA",
                                    sniff="acme_plugin.reader:sniff", read="acme_plugin.reader:read")],
        architectures=[ArchitectureContribution(id="acme", table="acme_plugin.tables:ACME")],
    )

Format contract:
    sniff(path: pathlib.Path) -> float     0 = not mine, 1 = certainly mine; cheap (headers only)
    read(path: pathlib.Path, base: BaseModelInfo | None = None) -> adapters_backend.core.adapter.Adapter
Architecture contract: `table` resolves to an `adapters_backend.arch.spec.ArchSpec`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_REF_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


@dataclass(frozen=True)
class FormatContribution:
    id: str             # lowercase, dotted: "peft", "kohya", "acme.lora"
    name: str           # shown to users
    sniff: str          # "module:attr"
    read: str           # "module:attr"
    description: str = ""


@dataclass(frozen=True)
class ArchitectureContribution:
    id: str             # lowercase architecture id ("llama", "phi3")
    table: str          # "module:attr" resolving to an ArchSpec


@dataclass(frozen=True)
class PluginManifest:
    name: str
    formats: tuple[FormatContribution, ...] = field(default_factory=tuple)
    architectures: tuple[ArchitectureContribution, ...] = field(default_factory=tuple)
    description: str = ""

    def contributions(self) -> list[str]:
        return [f"format {f.id}" for f in self.formats] + [f"architecture {a.id}" for a in self.architectures]


MAX_CONTRIBUTIONS = 1000     # per kind and plugin: a manifest is a short list written by hand
_FORMAT_FIELDS = {f: str for f in ("id", "name", "sniff", "read", "description")}
_ARCH_FIELDS = {f: str for f in ("id", "table")}


def _check_id(kind: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > 100 or not _ID_RE.match(value):
        raise ValueError(f"{kind} id {value!r} must be lowercase letters, digits, '.', '_' or '-'")
    return value


def _check_ref(kind: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > 300 or not _REF_RE.match(value):
        raise ValueError(f"{kind} reference {value!r} must look like 'package.module:attribute'")
    return value


def _entry(kind: str, index: int, raw: object, cls, fields: dict[str, type]):
    """One contribution (a dict, or the dataclass itself) with every field checked for its type."""
    if isinstance(raw, cls):
        values = {f: getattr(raw, f) for f in fields}
    elif isinstance(raw, dict):
        values = dict(raw)
    else:
        raise ValueError(f"{kind} entry {index} must be a {cls.__name__} or a dict, not {type(raw).__name__}")
    unknown = sorted(str(k) for k in set(values) - set(fields))
    if unknown:
        raise ValueError(f"{kind} entry {index} has unknown keys: {', '.join(unknown)}")
    for name, typ in fields.items():
        value = values.get(name, "" if name == "description" else None)
        if not isinstance(value, typ):
            raise ValueError(f"{kind} entry {index}: '{name}' must be a {typ.__name__}, not {type(value).__name__}")
        values[name] = value
    return cls(**values)


def _entries(kind: str, raw: object) -> list:
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"'{kind}' must be a list, not {type(raw).__name__}")
    if len(raw) > MAX_CONTRIBUTIONS:
        raise ValueError(f"'{kind}' lists {len(raw)} entries (at most {MAX_CONTRIBUTIONS})")
    return list(raw)


def validate_manifest(obj: object) -> PluginManifest:
    """Turn what an entry point loaded into a checked PluginManifest, or raise ValueError saying why.

    Every field's type is checked here, so a malformed manifest is reported as such and nothing
    downstream meets a wrong type. Whether the references resolve is checked when they are used
    (PluginRegistry.resolve) and by PluginRegistry.check."""
    if isinstance(obj, PluginManifest):
        data = {"name": obj.name, "description": obj.description,
                "formats": obj.formats, "architectures": obj.architectures}
    elif isinstance(obj, dict):
        data = obj
    else:
        raise ValueError(f"manifest must be a PluginManifest or a dict, not {type(obj).__name__}")
    unknown = sorted(str(k) for k in set(data) - {"name", "description", "formats", "architectures"})
    if unknown:
        raise ValueError(f"manifest has unknown keys: {', '.join(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise ValueError("manifest needs a 'name': a non-empty string of at most 200 characters")
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ValueError(f"'description' must be a string, not {type(description).__name__}")
    formats = []
    for i, raw in enumerate(_entries("formats", data.get("formats"))):
        f = _entry("format", i, raw, FormatContribution, _FORMAT_FIELDS)
        _check_id("format", f.id)
        if not f.name.strip():
            raise ValueError(f"format {f.id!r} needs a non-empty 'name'")
        _check_ref("sniff", f.sniff)
        _check_ref("read", f.read)
        formats.append(f)
    archs = []
    for i, raw in enumerate(_entries("architectures", data.get("architectures"))):
        a = _entry("architecture", i, raw, ArchitectureContribution, _ARCH_FIELDS)
        _check_id("architecture", a.id)
        _check_ref("table", a.table)
        archs.append(a)
    for kind, ids in (("format", [f.id for f in formats]), ("architecture", [a.id for a in archs])):
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"{kind} id {twice[0]!r} appears twice in the manifest")
    if not formats and not archs:
        raise ValueError("manifest contributes nothing (no formats, no architectures)")
    return PluginManifest(name=name, description=description, formats=tuple(formats), architectures=tuple(archs))
