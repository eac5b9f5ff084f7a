"""An adapter's or a base model's shapes from the Hub without downloading weights.

`adapter_skeleton` rebuilds a repo's adapter as a local folder holding its config and each
safetensors file's header (fetched by huggingface_hub with HTTP Range requests) followed by a sparse
run of zeros of the right length: the format readers and `check_compatibility` then work exactly as
on the real files, since they read shapes, never tensor data.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from .client import api, cache_dir, endpoint, hub_errors

SMALL_FILES = ("adapter_config.json", "config.json", "model_hyperparameters.json")


def download_small(repo_id: str, filename: str, revision: str | None) -> Path:
    from huggingface_hub import hf_hub_download
    with hub_errors(repo_id, filename):
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir(),
                                    endpoint=endpoint()))


def write_header_only(path: Path, file_meta) -> None:
    """A safetensors file with `file_meta`'s header and zeros (sparse where the OS allows) for data."""
    from ..formats.safetensors_io import header_bytes
    tensors = {name: (t.dtype, list(t.shape), tuple(t.data_offsets)) for name, t in file_meta.tensors.items()}
    end = max((int(t.data_offsets[1]) for t in file_meta.tensors.values()), default=0)
    head = header_bytes(tensors, file_meta.metadata)
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(len(head) + end)


def adapter_skeleton(repo_id: str, revision: str, files: list[str], dest: Path) -> Path:
    """Build the header-only copy of the repo's adapter in `dest` (a new folder)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in files:
        if "/" in name:
            continue       # top-level adapters only; subfolders are other checkpoints
        if name in SMALL_FILES:
            shutil.copyfile(download_small(repo_id, name, revision), dest / name)
        elif name.endswith(".safetensors"):
            with hub_errors(repo_id, name):
                meta = api().parse_safetensors_file_metadata(repo_id, name, revision=revision)
            write_header_only(dest / name, meta)
    return dest


def hub_base_info(repo_id: str, revision: str | None = None):
    """BaseModelInfo for a Hub model from its config.json and safetensors headers only."""
    from ..core.base_model import base_info_from_hf
    config = json.loads(download_small(repo_id, "config.json", revision).read_text(encoding="utf-8"))
    with hub_errors(repo_id, "safetensors headers"):
        meta = api().get_safetensors_metadata(repo_id, revision=revision)
    shapes = {name: tuple(t.shape) for fm in meta.files_metadata.values() for name, t in fm.tensors.items()}
    return base_info_from_hf(config, shapes, name=repo_id, upstream_ids=[repo_id])
