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


def _check_id(kind: str, value: object) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(f"{kind} id {value!r} must be lowercase letters, digits, '.', '_' or '-'")
    return value


def _check_ref(kind: str, value: object) -> str:
    if not isinstance(value, str) or not _REF_RE.match(value):
        raise ValueError(f"{kind} reference {value!r} must look like 'package.module:attribute'")
    return value


def validate_manifest(obj: object) -> PluginManifest:
    """Turn what an entry point loaded into a checked PluginManifest, or raise ValueError saying why."""
    if isinstance(obj, PluginManifest):
        data = {"name": obj.name, "description": obj.description,
                "formats": list(obj.formats), "architectures": list(obj.architectures)}
    elif isinstance(obj, dict):
        data = obj
    else:
        raise ValueError(f"manifest must be a PluginManifest or a dict, got {type(obj).__name__}")
    unknown = set(data) - {"name", "description", "formats", "architectures"}
    if unknown:
        raise ValueError(f"manifest has unknown keys: {', '.join(sorted(unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError("manifest needs a non-empty 'name'")
    formats = []
    for f in data.get("formats") or ():
        if isinstance(f, dict):
            try:
                f = FormatContribution(**f)
            except TypeError as exc:
                raise ValueError(f"bad format entry: {exc}") from None
        if not isinstance(f, FormatContribution):
            raise ValueError(f"format entries must be FormatContribution or dict, got {type(f).__name__}")
        _check_id("format", f.id)
        _check_ref("sniff", f.sniff)
        _check_ref("read", f.read)
        formats.append(f)
    archs = []
    for a in data.get("architectures") or ():
        if isinstance(a, dict):
            try:
                a = ArchitectureContribution(**a)
            except TypeError as exc:
                raise ValueError(f"bad architecture entry: {exc}") from None
        if not isinstance(a, ArchitectureContribution):
            raise ValueError(f"architecture entries must be ArchitectureContribution or dict, got {type(a).__name__}")
        _check_id("architecture", a.id)
        _check_ref("table", a.table)
        archs.append(a)
    if not formats and not archs:
        raise ValueError("manifest contributes nothing (no formats, no architectures)")
    return PluginManifest(name=name, description=str(data.get("description") or ""),
                          formats=tuple(formats), architectures=tuple(archs))
