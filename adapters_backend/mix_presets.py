"""Adapter mixes the user saved ("presets"), in `<data dir>/mix_presets.json`.

The desktop app writes them; `loradeck serve` reads them (a request may name a preset as its model).
One entry is a `MixEntry`: which library adapter, at what strength, on or off, with optional
per-layer factors. The file is re-read on every `all()`, so a preset saved while the server runs is
usable at once, and written atomically, so a reader never sees half of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .atomic import read_json, write_json_atomic
from .engines.base import STRENGTH_RANGE, ActiveAdapter, LayerScales, normalize_layer_scales

FILE_NAME = "mix_presets.json"
SCHEMA = "loradeck.mix_presets/1"


def clamp_strength(s: float) -> float:
    lo, hi = STRENGTH_RANGE
    return max(lo, min(hi, s))


@dataclass
class MixEntry:
    adapter_id: str                  # library id
    name: str                        # what the user calls it
    path: str                        # adapter file/folder the engine loads
    strength: float = 1.0
    enabled: bool = True
    layer_strengths: LayerScales = field(default_factory=tuple)   # ((first, last, factor), …) on top of strength

    def active(self) -> ActiveAdapter:
        """The engine's form of this entry (whether or not it is enabled)."""
        return ActiveAdapter(self.path, self.strength, self.layer_strengths or None, name=self.name)

    def to_json(self) -> dict:
        return {"adapter_id": self.adapter_id, "name": self.name, "path": self.path, "strength": self.strength,
                "enabled": self.enabled, "layer_strengths": [list(r) for r in self.layer_strengths]}

    @classmethod
    def from_json(cls, d: object) -> MixEntry:
        """ValueError (or TypeError/KeyError) for an entry that is not one; strengths are clamped."""
        if not isinstance(d, dict):
            raise ValueError("a mix entry must be an object")
        strength = float(d.get("strength", 1.0))
        if not math.isfinite(strength):
            raise ValueError("strength is not a number")
        return cls(adapter_id=str(d["adapter_id"]), name=str(d.get("name") or d["adapter_id"]),
                   path=str(d.get("path") or ""), strength=clamp_strength(strength),
                   enabled=bool(d.get("enabled", True)),
                   layer_strengths=normalize_layer_scales(d.get("layer_strengths")))


def entries_from_json(items: object) -> list[MixEntry]:
    """The entries of a saved list that can be read (damaged ones are skipped)."""
    out = []
    for d in items if isinstance(items, list) else []:
        try:
            out.append(MixEntry.from_json(d))
        except (KeyError, TypeError, ValueError):
            continue
    return out


class PresetStore:
    def __init__(self, path: Path | None = None):
        if path is None:
            from .paths import data_dir
            path = data_dir() / FILE_NAME
        self.path = Path(path)

    def all(self) -> dict[str, list[MixEntry]]:
        d = read_json(self.path, {})
        raw = d.get("presets") if isinstance(d, dict) and d.get("schema") == SCHEMA else None
        if not isinstance(raw, dict):
            return {}
        return {str(k): entries_from_json(v) for k, v in raw.items() if isinstance(v, list)}

    def names(self) -> list[str]:
        return sorted(self.all(), key=str.lower)

    def get(self, name: str) -> list[MixEntry] | None:
        return self.all().get(name)

    def save(self, name: str, entries: list[MixEntry]) -> None:
        presets = self.all()
        presets[name] = list(entries)
        self._write(presets)

    def delete(self, name: str) -> None:
        presets = self.all()
        if presets.pop(name, None) is not None:
            self._write(presets)

    def _write(self, presets: dict[str, list[MixEntry]]) -> None:
        write_json_atomic(self.path, {"schema": SCHEMA,
                                      "presets": {k: [e.to_json() for e in v] for k, v in presets.items()}})
