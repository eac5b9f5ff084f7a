"""Downloads into the standard HF cache, resumable across cancels, crashes and restarts.

huggingface_hub 2.x retries a broken connection with a Range request inside one call, but deletes its
process-unique temp file when the call fails (REFERENCE §6.4), so a cancelled or killed download would
start again at byte 0. We therefore drive its own pieces — get_hf_file_metadata (HEAD), http_get (GET
with resume_size), build_hf_headers (token) — against a stable partial file
`blobs/<etag>.loradeck-partial`, verify the bytes against the etag (sha256 for LFS files, git's blob
sha1 otherwise), and only then move it into the cache layout every HF tool reads:
    blobs/<etag>, snapshots/<commit>/<file> -> ../../blobs/<etag>, refs/<revision> = <commit>.
Every name in those paths is checked first (safe_names.py): the server and the user choose them. When
the file lives on another host (a CDN), the token is not sent there.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path

from filelock import FileLock

from ..atomic import PUBLIC, write_text_atomic
from ..disk_space import check_room, writing
from ..errors import HubError, HubOfflineError
from ..jobs import JobContext
from . import safe_names
from .client import cache_dir, endpoint, hub_errors, offline_hint
from .http import token_headers_for
from .progress import Progress

_CHUNK = 4 << 20


def storage_folder(repo_id: str) -> Path:
    return cache_dir() / ("models--" + safe_names.repo_id(repo_id).replace("/", "--"))


def snapshot_file(repo_id: str, commit: str, filename: str) -> Path:
    """snapshots/<commit>/<filename> in the repository's cache folder, once both names are checked."""
    return (storage_folder(repo_id) / "snapshots" / safe_names.commit(repo_id, commit)
            / safe_names.repo_file(repo_id, filename))


def _cached(repo_id: str, filename: str, revision: str | None) -> Path | None:
    from huggingface_hub import try_to_load_from_cache
    safe_names.repo_file(repo_id, filename)
    if revision is not None:
        safe_names.revision(repo_id, revision)
    hit = try_to_load_from_cache(repo_id, filename, cache_dir=cache_dir(), revision=revision)
    return Path(hit) if isinstance(hit, str) else None


def _verify(path: Path, etag: str) -> bool:
    h_sha256, h_git = hashlib.sha256(), hashlib.sha1()
    h_git.update(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h_sha256.update(chunk)
            h_git.update(chunk)
    if re.fullmatch(r"[0-9a-f]{64}", etag):
        return h_sha256.hexdigest() == etag
    if re.fullmatch(r"[0-9a-f]{40}", etag):
        return h_git.hexdigest() == etag
    return True      # an etag we cannot check; http_get already checked the size


def _link(blob: Path, pointer: Path) -> None:
    """snapshots/<commit>/<file> -> the blob (relative symlink; a copy where symlinks are not allowed)."""
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_name(f".{pointer.name}.{uuid.uuid4().hex}.tmp")   # unique: two downloads may link at once
    try:
        os.symlink(os.path.relpath(blob, pointer.parent), tmp)
    except OSError:
        shutil.copyfile(blob, tmp)
    os.replace(tmp, pointer)


def _write_ref(repo_id: str, revision: str, commit: str) -> None:
    if revision == commit:
        return
    write_text_atomic(storage_folder(repo_id) / "refs" / safe_names.revision(repo_id, revision), commit,
                      mode=PUBLIC)


def fetch_file(repo_id: str, filename: str, commit: str, progress: Progress) -> Path:
    """One file at a pinned commit into the cache; resumes a partial file left by an earlier attempt."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import http_get

    pointer = snapshot_file(repo_id, commit, filename)
    if pointer.exists():
        progress.skip(pointer.stat().st_size)
        return pointer
    url = hf_hub_url(repo_id, filename, revision=commit, endpoint=endpoint())
    with hub_errors(repo_id, filename):
        # retry_on_errors: a dropped connection is tried again (huggingface_hub's backoff), not "offline"
        meta = get_hf_file_metadata(url, endpoint=endpoint(), retry_on_errors=True)
    etag = safe_names.etag(repo_id, filename, meta.etag)
    blobs = storage_folder(repo_id) / "blobs"
    with writing(blobs):
        blobs.mkdir(parents=True, exist_ok=True)
    blob = blobs / etag
    if not blob.exists():
        partial = blobs / f"{etag}.loradeck-partial"
        with FileLock(blobs / f"{etag}.loradeck-lock", timeout=3600):   # one writer per blob
            if not blob.exists():
                target = f"{filename} of {repo_id} into {blobs}"      # what the user asked for, and where
                with writing(target), open(partial, "ab"):
                    pass
                with writing(target), open(partial, "r+b") as fh:
                    fh.seek(0, os.SEEK_END)
                    resume = fh.tell()
                    if meta.size is not None and resume > meta.size:   # not ours / corrupt: start over
                        fh.seek(0)
                        fh.truncate()
                        resume = 0
                    progress.skip(resume)
                    # huggingface_hub writes (and checks cancellation) once per chunk, 10 MB by default:
                    # 1 MB chunks bound what a cancel waits for and what a killed process loses.
                    from huggingface_hub import constants
                    constants.DOWNLOAD_CHUNK_SIZE = min(constants.DOWNLOAD_CHUNK_SIZE, 1 << 20)
                    with hub_errors(repo_id, filename):
                        http_get(meta.location, fh, resume_size=resume, headers=token_headers_for(url, meta.location),
                                 expected_size=meta.size, displayed_filename=filename,
                                 tqdm_class=progress.tqdm_class())
                if not _verify(partial, etag):
                    partial.unlink(missing_ok=True)
                    raise HubError(repo_id, f"{filename}: the downloaded bytes do not match the Hub's checksum "
                                            "(corrupted in transit); try again")
                os.replace(partial, blob)
    else:
        progress.skip(blob.stat().st_size)
    with writing(pointer):
        _link(blob, pointer)
    return pointer


def download_files(repo_id: str, files: list[str], revision: str | None = None, ctx: JobContext | None = None,
                   sizes: dict[str, int] | None = None, commit: str | None = None,
                   etags: dict[str, str] | None = None) -> Path:
    """Download `files` of the repo at `revision` (pinned to its commit); returns the snapshot folder.
    Offline, or when the Hub cannot be reached, files already in the cache are used instead. `sizes`
    and `etags` (details.blob_etags) come with a `commit` the caller looked up."""
    ctx = ctx or JobContext()
    for f in files:
        safe_names.repo_file(repo_id, f)
    if commit is None:
        from .details import blob_etags, model_info
        try:
            info = model_info(repo_id, revision)
            commit = info.sha
            sizes = sizes or {s.rfilename: (s.lfs.size if s.lfs else s.size) or 0 for s in info.siblings or []}
            etags = etags or blob_etags(info)
        except HubOfflineError:
            return _from_cache(repo_id, files, revision)
    progress = Progress(ctx, sum((sizes or {}).get(f, 0) for f in files), f"{repo_id}")
    check_room(storage_folder(repo_id), _still_needed(repo_id, commit, files, sizes or {}, etags or {}),
               f"{repo_id} into the Hugging Face cache")
    for f in files:
        ctx.check()
        try:
            fetch_file(repo_id, f, commit, progress)
        except HubOfflineError:
            return _from_cache(repo_id, files, commit)
    _write_ref(repo_id, revision or "main", commit)
    return storage_folder(repo_id) / "snapshots" / commit


def _still_needed(repo_id: str, commit: str, files: list[str], sizes: dict[str, int],
                  etags: dict[str, str]) -> int:
    """Bytes the download of `files` still has to write: each file not in the snapshot yet, less what
    its own partial file (named by its etag) already holds, or nothing when its blob is in the cache
    (another revision's). Partials of other files (a download of another one left off) are not
    counted: they do not shorten this one."""
    blobs = storage_folder(repo_id) / "blobs"
    needed = 0
    for f in files:
        size = sizes.get(f, 0)
        if snapshot_file(repo_id, commit, f).exists():
            continue
        etag = etags.get(f)
        held = 0
        if etag is not None:
            if (blobs / etag).is_file():
                held = size
            elif (blobs / f"{etag}.loradeck-partial").is_file():
                held = min(size, (blobs / f"{etag}.loradeck-partial").stat().st_size)
        needed += size - held
    return needed


def _from_cache(repo_id: str, files: list[str], revision: str | None) -> Path:
    paths = [_cached(repo_id, f, revision) for f in files]
    missing = [f for f, p in zip(files, paths) if p is None]
    if missing or not files:
        raise HubOfflineError(repo_id, f"{offline_hint()} Not in the local cache: {', '.join(missing) or 'anything'}")
    # snapshots/<commit>/<file>: the snapshot folder is the one above the file's relative path
    first = paths[0]
    return first.parents[len(Path(files[0]).parts) - 1]


def cached_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit a revision points to in the cache (None if never downloaded)."""
    rev = safe_names.revision(repo_id, revision or "main")
    if re.fullmatch(r"[0-9a-f]{40}", rev):
        return rev
    ref = storage_folder(repo_id) / "refs" / rev
    if not ref.is_file():
        return None
    return safe_names.commit(repo_id, ref.read_text().strip())
