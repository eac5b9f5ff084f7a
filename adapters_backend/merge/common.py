"""Shared pieces of merge and blend: "PATH[:STRENGTH]" arguments, reading several adapters, results."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.adapter import Adapter
from ..core.base_model import BaseModelInfo
from ..disk_space import check_room, writing
from ..errors import BackendError
from ..model_ref import split_strength


class MergeError(BackendError, ValueError):
    """A merge or blend cannot be done as asked (message names the file and the reason)."""


@dataclass
class MergeResult:
    path: Path
    touched: list[str] = field(default_factory=list)        # tensors that changed
    copied: int = 0                                          # tensors copied unchanged
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)      # touched tensor -> type written


def read_adapters(specs, base: BaseModelInfo | None) -> list[tuple[Adapter, float]]:
    from ..formats.registry import read_adapter
    out = []
    for item in specs:
        if isinstance(item, tuple):
            src, strength = item
        else:
            src, strength = split_strength(os.fspath(item))
        adapter = src if isinstance(src, Adapter) else read_adapter(Path(src), base=base)
        out.append((adapter, float(strength)))
    if not out:
        raise MergeError("no adapters given")
    return out


def prepare_output_dir(out: Path, needed: int) -> Path:
    """A hidden staging folder beside `out` (renamed onto it when complete), once the disk is known
    to have room for the `needed` bytes it will hold."""
    import tempfile
    out = Path(out)
    check_room(out.parent, needed, str(out))
    with writing(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))


def finish_output_dir(staging: Path, out: Path, overwrite: bool) -> None:
    with writing(out):
        _replace_output_dir(staging, Path(out), overwrite)


def _replace_output_dir(staging: Path, out: Path, overwrite: bool) -> None:
    import shutil
    if out.exists() and not out.is_dir():          # --force replaces a folder, never a file or a device
        raise MergeError(f"{out} exists and is not a folder: give the name of a new folder")
    if out.exists():
        if not overwrite:
            raise MergeError(f"{out} already exists (pass --force to replace it)")
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
