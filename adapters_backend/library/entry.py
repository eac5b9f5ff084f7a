"""One installed adapter as the library records it."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from ..kinds import is_count, is_number

ENTRY_FILE = "entry.json"   # a copy of the entry inside each adapter's folder, to rebuild a lost index
# An id is a folder name under adapters/; one read from a damaged or crafted index must not name
# "..", a path, or a device, since `remove` deletes adapters/<id>.
ID_RE = re.compile(r"[a-z0-9_][a-z0-9._-]{0,127}")


@dataclass
class LibraryEntry:
    id: str                       # stable key, also the folder name under adapters/
    name: str                     # the user's label
    path: Path                    # what read_adapter / the engines open (file or folder)
    format: str = ""
    variant: str = ""             # "lora", "dora", … ("lora+full" when mixed)
    rank: int | None = None       # the most common rank, and its alpha
    alpha: float | None = None
    rank_range: list[int] | None = None      # [min, max] over the modules; None in entries written before it
    alpha_range: list[float] | None = None
    base_model: str | None = None
    size: int = 0
    source: str = ""              # "hub:owner/repo@commit", "local:/abs/path", "built-in demo"
    license: str | None = None
    notes: str = ""
    installed: str = ""           # ISO 8601, UTC
    sha256: str = ""
    stored: str = "copy"          # "copy" (files inside the library) | "reference" (e.g. the HF cache)
    missing: bool = False         # set when opening finds the files gone; never stored

    @property
    def rank_text(self) -> str:
        """"8", or "4–12" when the modules' ranks differ; "" when unknown."""
        return _value_text(self.rank, self.rank_range)

    @property
    def alpha_text(self) -> str:
        return _value_text(self.alpha, self.alpha_range)

    def as_dict(self) -> dict:
        # By hand, not dataclasses.asdict: its deep copy took two thirds of the time of writing the
        # index of a library of 1,000 adapters (34 ms of 51, at every install, rename and removal).
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["path"] = str(self.path)
        for key in ("rank_range", "alpha_range"):
            if d[key] is not None:
                d[key] = list(d[key])
        return d

    def to_json(self, root: Path) -> dict:
        """The stored form: copies are kept relative to the library root, so the library can move."""
        d = self.as_dict()
        d.pop("missing")
        if self.stored == "copy":
            try:
                d["path"] = Path(self.path).relative_to(root).as_posix()
            except ValueError:
                pass
        return d

    @classmethod
    def from_json(cls, d: dict, root: Path) -> LibraryEntry:
        if not isinstance(d, dict) or not isinstance(d.get("id"), str) or not d.get("path"):
            raise ValueError("entry without id or path")
        if not valid_id(d["id"]):
            raise ValueError(f"entry id {d['id']!r} is not a library folder name")
        if not isinstance(d["path"], str):
            raise ValueError(f"entry {d['id']!r} has no path")
        # A value of another kind (a damaged or hand-edited index) is left out for the field's default:
        # the library's views format these (a rank of "8" stopped the library from being listed).
        kw = {k: v for k, v in d.items() if k in _KINDS and _KINDS[k](v)}
        p = Path(d["path"])
        kw["id"], kw["path"] = d["id"], (p if p.is_absolute() else root / p)
        kw.setdefault("name", kw["id"])
        return cls(**kw)


def _text(v) -> bool:
    return isinstance(v, str)


def _pair(kind):
    return lambda v: v is None or isinstance(v, list) and len(v) == 2 and all(map(kind, v))


def _maybe(kind):
    return lambda v: v is None or kind(v)


_KINDS = {"name": _text, "format": _text, "variant": _text, "rank": _maybe(is_count), "alpha": _maybe(is_number),
          "rank_range": _pair(is_count), "alpha_range": _pair(is_number), "base_model": _maybe(_text), "size": is_count,
          "source": _text, "license": _maybe(_text), "notes": _text, "installed": _text, "sha256": _text,
          "stored": lambda v: v in ("copy", "reference")}


def _value_text(value, span) -> str:
    if isinstance(span, (list, tuple)) and len(span) == 2 and span[0] != span[1]:
        return f"{span[0]:g}–{span[1]:g}"
    return "" if value is None else f"{value:g}"


def valid_id(value: object) -> bool:
    from ..paths import unsafe_name_reason
    return isinstance(value, str) and bool(ID_RE.fullmatch(value)) and unsafe_name_reason(value) is None
