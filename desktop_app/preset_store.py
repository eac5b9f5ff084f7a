"""Named adapter mixes ("presets"), kept in `<data dir>/mix_presets.json`."""
from __future__ import annotations

from pathlib import Path

from .storage import read_json, write_json_atomic

SCHEMA = "loradeck.mix_presets/1"


class PresetStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        d = read_json(self.path, {})
        raw = d.get("presets", {}) if isinstance(d, dict) and d.get("schema") == SCHEMA else {}
        self._presets: dict[str, list[dict]] = {str(k): list(v) for k, v in raw.items() if isinstance(v, list)}

    def names(self) -> list[str]:
        return sorted(self._presets, key=str.lower)

    def get(self, name: str) -> list[dict]:
        return [dict(e) for e in self._presets.get(name, [])]

    def save(self, name: str, entries: list[dict]) -> None:
        self._presets[name] = [dict(e) for e in entries]
        self._write()

    def delete(self, name: str) -> None:
        if self._presets.pop(name, None) is not None:
            self._write()

    def _write(self) -> None:
        write_json_atomic(self.path, {"schema": SCHEMA, "presets": self._presets})
