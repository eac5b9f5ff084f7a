"""Copy an adapter into a staging folder, in chunks, reporting progress and honouring cancel."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..disk_space import writing
from ..errors import AdapterFormatError
from ..jobs import JobContext

_CHUNK = 4 << 20


def _files(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    # Hidden files (.git, .cache/huggingface) are not part of the adapter (content_sha256 skips them too).
    return sorted(f for f in target.rglob("*") if f.is_file()
                  and not any(p.startswith(".") for p in f.relative_to(target).parts))


def _read(fin, src: Path) -> bytes:
    try:
        return fin.read(_CHUNK)
    except OSError as exc:             # the source's disk, not ours: never reported as a failed write
        raise AdapterFormatError(src, f"cannot read file: {exc.strerror or exc}") from None


def copy_file(src: Path, dst: Path, ctx: JobContext, done: int, total: int) -> int:
    """Copy one file; returns the running byte count. Module-level so tests can make it fail."""
    with open(src, "rb") as fin, writing(dst), open(dst, "wb") as fout:
        while chunk := _read(fin, src):
            ctx.check()
            fout.write(chunk)
            done += len(chunk)
            ctx.report(done, total, f"copying {src.name}")
    with writing(dst):
        shutil.copystat(src, dst, follow_symlinks=True)
    return done


def stage_copy(target: Path, staging: Path, ctx: JobContext) -> Path:
    """Copy `target` (file or folder) to staging/<its name>; returns that path."""
    target = Path(target)
    files = _files(target)
    total = sum(f.stat().st_size for f in files)
    dest = staging / target.name
    done = 0
    for f in files:
        out = dest if target.is_file() else dest / f.relative_to(target)
        out.parent.mkdir(parents=True, exist_ok=True)
        done = copy_file(f, out, ctx, done, total)
    if target.is_dir():
        dest.mkdir(parents=True, exist_ok=True)
    return dest
