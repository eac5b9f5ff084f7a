"""The models downloaded into the Hugging Face cache, and removing one.

A GGUF model is gigabytes, and trying a few quantizations of a few models fills a laptop's disk; the
files stay in the HF cache (shared with every other HF tool), where the app showed nothing of them.
`downloaded_models` lists the cache's model repositories that hold a model LoRA Deck runs (GGUF model
files, or a PyTorch model: config.json and safetensors weights) — not adapters, which the library
manages — with what they take on disk. `remove_downloaded` deletes one repository's downloaded files
through huggingface_hub's own cache API (which knows its layout: blobs shared between revisions,
refs, half-finished downloads), and refuses while a file in it is in use (the loaded model, an
adapter the library references there).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import HubError
from .client import cache_dir

log = logging.getLogger(__name__)


@dataclass
class DownloadedModel:
    repo_id: str
    kind: str                          # "GGUF" | "PyTorch"
    size: int                          # bytes the repository takes in the cache (every revision)
    last_used: float                   # when a file of it was last read (or written), epoch seconds
    models: list[str] = field(default_factory=list)   # what to open: GGUF files (first parts), or the folder

    def as_dict(self) -> dict:
        return {"repo_id": self.repo_id, "kind": self.kind, "size": self.size, "last_used": self.last_used,
                "models": list(self.models)}


def _scan():
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound
    try:
        return scan_cache_dir(cache_dir())
    except CacheNotFound:
        return None


def _is_gguf_model(path: Path) -> bool:
    """A GGUF file of a model: not an adapter, not a vision projector. One whose header cannot be read
    (a damaged download) counts: it takes the disk all the same, and its user may want it gone."""
    from ..gguf.header import GGUFError, read_header
    if "mmproj" in path.name.lower():
        return False
    try:
        return read_header(path).general_type != "adapter"
    except (GGUFError, OSError):
        return True


def _describe(repo) -> DownloadedModel | None:
    from .gguf_models import gguf_models
    files = [(rev, f) for rev in repo.revisions for f in rev.files]
    names = {f.file_name for _, f in files}
    last = max([repo.last_accessed, repo.last_modified, *(f.blob_last_accessed for _, f in files)])
    # A file's name as the repository lists it: its path within its revision's snapshot
    gguf = {f.file_path.relative_to(rev.snapshot_path).as_posix(): f for rev, f in files
            if f.file_name.lower().endswith(".gguf") and _is_gguf_model(f.file_path)}
    if gguf:
        models = [str(gguf[m["name"]].file_path) for m in
                  gguf_models([{"name": n, "size": f.size_on_disk} for n, f in gguf.items()])]
        return DownloadedModel(repo.repo_id, "GGUF", repo.size_on_disk, last, models)
    if "config.json" in names and "adapter_config.json" not in names and any(
            n.endswith(".safetensors") for n in names):
        folders = sorted({str(rev.snapshot_path) for rev in repo.revisions})
        return DownloadedModel(repo.repo_id, "PyTorch", repo.size_on_disk, last, folders)
    return None


def downloaded_models() -> list[DownloadedModel]:
    """The models in the HF cache, most recently used first."""
    info = _scan()
    if info is None:
        return []
    out = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        try:
            model = _describe(repo)
        except (OSError, ValueError) as exc:          # a half-deleted or odd cache entry: not listed
            log.info("%s in the HF cache: %s", repo.repo_id, exc)
            continue
        if model is not None:
            out.append(model)
    return sorted(out, key=lambda m: -m.last_used)


def remove_downloaded(repo_id: str, in_use: list[str]) -> int:
    """Delete `repo_id`'s downloaded files from the HF cache; the bytes freed. HubError, with nothing
    deleted, when one of the paths `in_use` (the loaded model, library adapters) lies in it."""
    info = _scan()
    repo = next((r for r in info.repos if r.repo_type == "model" and r.repo_id == repo_id), None) if info else None
    if repo is None:
        raise HubError(repo_id, f"it is not in the Hugging Face cache ({cache_dir()}): nothing to remove")
    root = Path(repo.repo_path).resolve()
    for path in in_use:
        p = Path(path).expanduser()
        for candidate in {p.absolute(), p.resolve()}:       # a cache path, or the blob a snapshot link names
            if candidate == root or root in candidate.parents:
                raise HubError(repo_id, f"it is in use ({p.name}): unload the model, or remove the adapter "
                                        "from the library, before removing its download")
    # Every revision: huggingface_hub then deletes the repository's folder (blobs, refs, snapshots) too
    info.delete_revisions(*[rev.commit_hash for rev in repo.revisions]).execute()
    log.info("removed %s from the HF cache (%d bytes)", repo_id, repo.size_on_disk)
    return int(repo.size_on_disk)


__all__ = ["DownloadedModel", "downloaded_models", "remove_downloaded"]
