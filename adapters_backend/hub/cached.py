"""What the local HF cache knows about a repository, for when the Hub cannot be asked.

A repository downloaded before (by LoRA Deck or any HF tool) has `refs/<revision>` and a snapshot of
the files that were fetched; its README's front matter gives the licence, base model and tags. That
is enough for `hub show` and the app's details pane offline, and for a verdict from the real files.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..json_input import JsonInputError, read_json_file
from .download import cached_commit, storage_folder

log = logging.getLogger(__name__)


def cached_details(repo_id: str, revision: str | None, why: str):
    """RepoDetails read from the cache (from_cache=True, `why` in its note), or None when the
    repository (at that revision) was never downloaded."""
    from .details import RepoDetails, read_adapter_config
    from .gguf_models import gguf_models
    from .search import base_of, format_of
    commit = cached_commit(repo_id, revision)
    snapshot = storage_folder(repo_id) / "snapshots" / commit if commit else None
    if snapshot is None or not snapshot.is_dir():
        return None
    files = [{"name": p.relative_to(snapshot).as_posix(), "size": p.stat().st_size, "sha256": None}
             for p in sorted(snapshot.rglob("*")) if p.is_file()]
    card = _card(snapshot / "README.md")
    tags = [t for t in card.get("tags") or [] if isinstance(t, str)]
    library = card.get("library_name") if isinstance(card.get("library_name"), str) else None
    licence = card.get("license") if isinstance(card.get("license"), str) else None
    d = RepoDetails(repo_id=repo_id, revision=commit, format=format_of(tags, library), license=licence,
                    base_model=base_of(tags, card.get("base_model")), gated=False, files=files, tags=tags,
                    from_cache=True, note=f"{why} Showing the files downloaded before, from the local cache.")
    d.gguf_files = gguf_models(files)
    config = snapshot / "adapter_config.json"
    if config.is_file():
        try:
            read_adapter_config(d, read_json_file(config))
        except (OSError, JsonInputError) as exc:
            log.info("%s: unreadable adapter_config.json in the cache: %s", repo_id, exc)
    elif d.format is None and d.gguf_files:
        d.format = "gguf"
    return d


def adapter_target(d) -> Path | None:
    """What to read as the adapter: the snapshot folder, or its one weights file (None: no weights)."""
    from .install import _WEIGHTS, _target
    snapshot = storage_folder(d.repo_id) / "snapshots" / d.revision
    names = [f["name"] for f in d.files if "/" not in f["name"]]
    if not any(n.lower().endswith(_WEIGHTS) for n in names):
        return None
    return _target(snapshot, names)


def _card(readme: Path) -> dict:
    """The README's YAML front matter ({} when there is none or it cannot be read)."""
    if not readme.is_file():
        return {}
    try:
        from huggingface_hub import metadata_load
        return metadata_load(readme) or {}
    except Exception as exc:  # a broken card only costs the licence and base lines
        log.info("%s: unreadable model card: %s", readme, exc)
        return {}
