"""A request's adapter mix, from three places (later ones override earlier ones for the same adapter):

1. ``model`` naming a saved mix preset,
2. the ``adapters`` field: ``[{"name": "shout", "strength": 0.8}, "pirate", ...]`` (a bare name = 1.0),
3. ``<lora:name:0.8>`` / ``<lora:name>`` tags in the prompt or message text (removed before generation).

Every adapter is resolved to a file, its strength checked against the engine's range, and its
compatibility with the loaded model checked before the engine ever sees it.
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from ..engines.base import STRENGTH_RANGE, ActiveAdapter, normalize_layer_scales
from ..errors import BackendError, UsageError
from ..file_identity import stat_identity
from ..model_ref import split_strength
from .errors import ApiError
from .resolver import AdapterResolver, ResolvedAdapter, UnknownAdapter

# <lora:NAME> or <lora:NAME:STRENGTH>; NAME may itself hold ':' (a Windows path), so the strength is
# taken from the last ':' only when it parses as a number.
TAG_RE = re.compile(r"<lora:([^<>\n]+?)>", re.IGNORECASE)


@dataclass(frozen=True)
class MixItem:
    name: str
    strength: float
    param: str                          # where it came from, for error messages ("adapters[1]", "messages")
    layer_scales: tuple | None = None
    resolved: ResolvedAdapter | None = None   # set for preset entries (found by library id or path)


def strip_tags(text: str, param: str) -> tuple[str, list[MixItem]]:
    """Remove every <lora:…> tag from `text`; returns the clean text and the tags as mix items."""
    items: list[MixItem] = []

    def take(m: re.Match) -> str:
        inner = m.group(1).strip()
        try:
            name, strength = split_strength(inner)
        except UsageError as exc:
            raise ApiError(f"{exc} (in a <lora:…> tag)", param=param, code="invalid_strength") from None
        name = name.strip()
        items.append(MixItem(name, _strength(strength, param, name), param))
        return ""

    clean = TAG_RE.sub(take, text)
    if items:
        clean = re.sub(r"[ \t]{2,}", " ", clean).strip()   # "<lora:x:1> Hello" -> "Hello"
    return clean, items


def parse_adapters_field(value) -> list[MixItem]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ApiError("'adapters' must be a list like [{\"name\": \"shout\", \"strength\": 0.8}]",
                       param="adapters", code="invalid_adapters")
    items = []
    for i, entry in enumerate(value):
        param = f"adapters[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, dict):
            raise ApiError(f"{param} must be an object with 'name' and 'strength'", param=param,
                           code="invalid_adapters")
        name = entry.get("name", entry.get("id"))
        if not isinstance(name, str) or not name.strip():
            raise ApiError(f"{param} has no 'name'", param=f"{param}.name", code="invalid_adapters")
        raw = entry.get("strength", entry.get("scale", entry.get("weight", 1.0)))
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise ApiError(f"{param}.strength of '{name}' must be a number, got {raw!r}",
                           param=f"{param}.strength", code="invalid_strength")
        try:
            layers = normalize_layer_scales(entry.get("layer_strengths"))
        except ValueError as exc:
            raise ApiError(f"{param}.layer_strengths: {exc}", param=f"{param}.layer_strengths",
                           code="invalid_adapters") from None
        items.append(MixItem(name.strip(), _strength(float(raw), f"{param}.strength", name), param, layers or None))
    return items


def _strength(value: float, param: str, name: str) -> float:
    lo, hi = STRENGTH_RANGE
    if not math.isfinite(value) or not lo <= value <= hi:
        raise ApiError(f"strength {value:g} of adapter '{name}' is outside [{lo:g}, {hi:g}]", param=param,
                       code="invalid_strength")
    return value


class MixBuilder:
    """Turns mix items into the engine's ActiveAdapter list; checks (and caches) compatibility."""

    def __init__(self, resolver: AdapterResolver, model_path: str | Path, engine_id: str = "llama.cpp",
                 check_compat: bool = True):
        self.resolver, self.model_path, self.engine_id = resolver, Path(model_path), engine_id
        self.check_compat = check_compat
        self._compat: dict[tuple, tuple[bool, str]] = {}
        self._lock = threading.Lock()

    def preset_items(self, name: str) -> list[MixItem] | None:
        """The preset's enabled entries (already resolved), or None when no preset has this name."""
        entries = self.resolver.presets().get(name)
        if entries is None:
            return None
        items = []
        for e in entries:
            if not e.enabled:
                continue
            try:
                resolved = self.resolver.resolve_preset_entry(e)
            except UnknownAdapter as exc:
                raise ApiError(f"preset '{name}': {exc}", param="model", code="adapter_not_found") from None
            items.append(MixItem(resolved.name, e.strength, f"preset '{name}'", e.layer_strengths or None, resolved))
        return items

    def build(self, items: list[MixItem]) -> list[ActiveAdapter]:
        mix: dict[str, ActiveAdapter] = {}
        for item in items:
            resolved = item.resolved
            if resolved is None:
                try:
                    resolved = self.resolver.resolve(item.name)
                except UnknownAdapter as exc:
                    raise ApiError(str(exc), param=item.param, code="adapter_not_found") from None
            self._check(resolved.path, item)
            key = str(resolved.path)
            mix.pop(key, None)                     # the later mention wins, and moves to the end
            mix[key] = ActiveAdapter(key, item.strength, item.layer_scales, name=resolved.name)
        return list(mix.values())

    def _check(self, path: Path, item: MixItem) -> None:
        if not self.check_compat:
            return
        try:
            key = stat_identity(path)
        except OSError:
            key = (str(path), 0, 0)
        with self._lock:
            hit = self._compat.get(key)
        if hit is None:
            from ..core.compat import check_compatibility
            try:
                report = check_compatibility(path, self.model_path, self.engine_id)
                hit = (report.compatible, report.summary)
            except (BackendError, OSError, ValueError) as exc:
                hit = (False, f"cannot be read: {exc}")
            with self._lock:
                self._compat[key] = hit
        ok, summary = hit
        if not ok:
            raise ApiError(f"adapter '{item.name}' cannot be used with this model: {summary}", param=item.param,
                           code="incompatible_adapter")
