"""Safe extraction of adapter archives (.zip).

A zip from the internet is hostile until proven otherwise: entries may climb out of the target
(`../`), be absolute, name another drive (`foo/D:evil.json` on Windows), use names Windows reserves
(`NUL`, `COM1`, a trailing dot), be symlinks, or decompress to far more than they claim (zip bombs,
also through entries that share their compressed data). We check every part of every entry name on
every platform before writing anything, check each final path stays inside the staging folder,
stream with a hard byte budget, and extract into a staging folder that is renamed into place only
when complete.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from ..errors import AdapterFormatError
from ..paths import unsafe_name_reason

MAX_FILES = 1000
MAX_TOTAL_BYTES = 64 * 1024**3      # adapters can be large (full embeddings); bombs are caught by ratio
MAX_RATIO = 200                      # uncompressed / compressed, per entry and in all (real tensors: ~1.1×)
_CHUNK = 1 << 20
_DRIVE = re.compile(r"[A-Za-z]:")


def _safe_member_path(path: Path, name: str) -> PurePosixPath:
    """The entry's path inside the archive, if every part of it is a plain file name on every
    platform; backslashes count as separators (some Windows tools write them)."""
    def refuse(problem: str):
        return AdapterFormatError(path, f"archive entry {name!r} {problem}; refused")

    norm = name.replace("\\", "/")
    if norm.startswith("/") or _DRIVE.match(norm):
        raise refuse("points outside the archive (an absolute path or a drive)")
    parts = [part for part in norm.split("/") if part not in ("", ".")]
    for part in parts:
        if part == "..":
            raise refuse("points outside the archive (path traversal)")
        if _DRIVE.match(part):
            raise refuse(f"points outside the archive (the part {part!r} names a drive on Windows)")
        reason = unsafe_name_reason(part)
        if reason:
            raise refuse(f"has a part {part!r} that is not a safe file name: {reason}")
    if not parts:
        raise refuse("has an empty name")
    return PurePosixPath(*parts)


def check_zip(path: Path) -> list[zipfile.ZipInfo]:
    """Validate a zip's directory without extracting; returns the file entries to extract."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise AdapterFormatError(path, f"not a valid zip archive ({exc})") from None
    with zf:
        infos = zf.infolist()
    if len(infos) > MAX_FILES:
        raise AdapterFormatError(path, f"archive holds {len(infos)} entries (limit {MAX_FILES}); refused")
    files, total, seen = [], 0, {}
    for info in infos:
        rel = _safe_member_path(path, info.filename)
        key = rel.as_posix().casefold()          # one file on Windows and macOS: a.json and A.json
        if key in seen and not (info.is_dir() and seen[key]):
            raise AdapterFormatError(path, f"archive holds two entries for {rel.as_posix()!r} (names differing "
                                           "only in case, or the same name twice); refused")
        seen[key] = info.is_dir()
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise AdapterFormatError(path, f"archive entry {info.filename!r} is a symbolic link; refused")
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise AdapterFormatError(path, f"archive entry {info.filename!r} is encrypted; refused")
        total += info.file_size
        if total > MAX_TOTAL_BYTES:
            raise AdapterFormatError(path, "archive would expand beyond the size limit; refused")
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > (1 << 20):
            raise AdapterFormatError(path, f"archive entry {info.filename!r} expands {info.file_size // info.compress_size}× "
                                           "(zip bomb?); refused")
        files.append(info)
    if not files:
        raise AdapterFormatError(path, "archive is empty")
    packed = path.stat().st_size
    if total > (1 << 20) and total > MAX_RATIO * max(packed, 1):
        # Entries may share one compressed stream (overlapping entries): each looks fine alone.
        raise AdapterFormatError(path, f"archive would expand {total // max(packed, 1)}× its size "
                                       "(zip bomb?); refused")
    return files


def extract_zip(path: Path, dest: Path) -> Path:
    """Extract `path` into the new folder `dest` (must not exist). All or nothing."""
    path, dest = Path(path), Path(dest)
    files = check_zip(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unzip-", dir=dest.parent))
    try:
        with zipfile.ZipFile(path) as zf:
            for info in files:
                rel = _safe_member_path(path, info.filename)
                target = staging.joinpath(*rel.parts)
                if not target.resolve().is_relative_to(staging.resolve()):
                    raise AdapterFormatError(path, f"archive entry {info.filename!r} points outside the archive; "
                                                   "refused")
                target.parent.mkdir(parents=True, exist_ok=True)
                budget = info.file_size
                with zf.open(info) as src, open(target, "wb") as out:
                    while True:
                        chunk = src.read(_CHUNK)
                        if not chunk:
                            break
                        budget -= len(chunk)
                        if budget < 0:  # the directory lied about the size
                            raise AdapterFormatError(path, f"archive entry {info.filename!r} is larger than declared; refused")
                        out.write(chunk)
        os.replace(staging, dest)
    except AdapterFormatError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise AdapterFormatError(path, f"cannot extract archive ({exc})") from None
    return dest


def unpacked_root(folder: Path) -> Path:
    """If an archive held a single top-level folder, the adapter is in there."""
    entries = [p for p in folder.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
