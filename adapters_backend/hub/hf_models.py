"""A Hugging Face model from the Hub for the PyTorch engine, fetched before transformers sees it.

Handed a Hub id, transformers downloads inside `from_pretrained`: every weight file the repository has
in its format, with no word on the size first, no progress the app can show and no way to stop it
(typing the id of a 70B model would start 140 GB into the cache behind a "Loading…"). Here the files the
model needs are chosen first (config, tokenizer, the safetensors weights transformers would read, never
an original-format duplicate such as `consolidated.safetensors` or a pickle), their size is checked
against the disk, and they come through download.py: progress, Cancel, resume, the HF cache. Offline,
a model downloaded before is used from the cache.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import HubError, HubOfflineError
from ..jobs import JobContext
from ..units import format_bytes
from .client import cache_dir
from .details import blob_etags, model_info
from .download import cached_commit, download_files, fetch_file, snapshot_file, storage_folder
from .progress import Progress
from .skeleton import read_small_json, require_small

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
# Besides the weights: what transformers reads to build the model, its tokenizer and chat template.
SIDE_FILES = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
              "special_tokens_map.json", "added_tokens.json", "vocab.json", "merges.txt", "chat_template.jinja",
              "chat_template.json"}
DISK_MARGIN = 1 << 30            # left free on the disk after the download


def needed_files(names: list[str], index: dict | None = None) -> list[str]:
    """The repository's files the model needs: the side files it has, and the weights `index` lists
    (model.safetensors.index.json's contents) or model.safetensors."""
    top = set(n for n in names if "/" not in n)
    side = sorted(top & SIDE_FILES)
    if "config.json" not in top:
        raise HubError(None, "the repository has no config.json at its top: not a Hugging Face model")
    if index is not None:
        shards = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(shards, dict) or not shards or not all(isinstance(v, str) for v in shards.values()):
            raise HubError(None, f"{INDEX} has no valid weight_map")
        weights = sorted(set(shards.values()))
        missing = [w for w in weights if w not in top]
        if missing:
            raise HubError(None, f"{INDEX} lists {', '.join(missing[:3])}, which the repository does not have")
        return side + [INDEX] + weights
    if SINGLE in top:
        return side + [SINGLE]
    from ..engines.torch_loading import PICKLED_MODEL
    raise HubError(None, PICKLED_MODEL if any(n.endswith((".bin", ".pt", ".pth")) for n in top)
                   else "the repository has no model.safetensors or model.safetensors.index.json")


def download_hf_model(repo_id: str, revision: str | None = None, ctx: JobContext | None = None,
                      check=None) -> Path:
    """The snapshot folder of `repo_id` with the files the model needs, downloaded if they are not in
    the cache; HubError (before any weight is fetched) when they do not fit the disk. `check(weight_bytes,
    config)` may refuse the model first (its config.json is fetched for it)."""
    ctx = ctx or JobContext()
    try:
        info = model_info(repo_id, revision)
    except HubOfflineError:
        return _cached_snapshot(repo_id, revision)
    sizes = {s.rfilename: (s.lfs.size if s.lfs else s.size) or 0 for s in info.siblings or []}
    names = list(sizes)
    index = _small_json(repo_id, INDEX, info.sha, sizes, ctx) if INDEX in names else None
    try:
        files = needed_files(names, index)
    except HubError as exc:
        raise HubError(repo_id, exc.problem) from None
    if check is not None:
        check(sum(sizes.get(f, 0) for f in files if f.endswith(".safetensors")),
              _small_json(repo_id, "config.json", info.sha, sizes, ctx))
    to_fetch = sum(sizes.get(f, 0) for f in files if not snapshot_file(repo_id, info.sha, f).is_file())
    _require_disk(repo_id, to_fetch)
    return download_files(repo_id, files, revision, ctx, sizes=sizes, commit=info.sha, etags=blob_etags(info))


def _small_json(repo_id: str, name: str, commit: str, sizes: dict, ctx: JobContext) -> dict:
    """One of the repository's small JSON files (config, weight index), fetched into the cache (with the
    download's progress and Stop) and read."""
    require_small(repo_id, name, sizes.get(name))
    return read_small_json(repo_id, name, fetch_file(repo_id, name, commit, Progress(ctx, sizes.get(name, 0), repo_id)))


def _require_disk(repo_id: str, size: int) -> None:
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if size + DISK_MARGIN > free:
        raise HubError(repo_id, f"the model needs {format_bytes(size)} more on the disk and the disk that holds the "
                                f"Hugging Face cache ({folder}) has {format_bytes(free)} free; make room, or "
                                "set HF_HUB_CACHE to a folder on a larger disk")


def _cached_snapshot(repo_id: str, revision: str | None) -> Path:
    commit = cached_commit(repo_id, revision)
    snapshot = storage_folder(repo_id) / "snapshots" / commit if commit else None
    if snapshot is None or not (snapshot / "config.json").is_file():
        from .client import offline_hint
        raise HubOfflineError(repo_id, f"{offline_hint()} (this model was never downloaded)")
    return snapshot
