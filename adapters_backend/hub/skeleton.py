"""An adapter's or a base model's shapes from the Hub without downloading weights.

`adapter_skeleton` rebuilds a repo's adapter as a local folder holding its config and each
safetensors file's header (fetched with HTTP Range requests, retried when the connection drops, see
http.py) followed by a sparse run of zeros of the right length: the format readers and
`check_compatibility` then work exactly as on the real files, since they read shapes, never tensor data.
"""
from __future__ import annotations

import shutil
import struct
from pathlib import Path

from ..errors import HubError
from ..json_input import MAX_JSON_BYTES, JsonInputError, parse_json, read_json_object
from ..units import format_bytes
from . import safe_names
from .client import cache_dir, endpoint, hub_errors, offline
from .http import hub_get

SMALL_FILES = ("adapter_config.json", "config.json", "model_hyperparameters.json")
FIRST_BYTES = 100_000          # most headers fit: one request instead of two (huggingface_hub does the same)
MAX_HEADER = 100_000_000       # the safetensors format's own limit
MAX_DATA = 1 << 42             # 4 TiB: no adapter or base model has more (the skeleton is sparse anyway)


def download_small(repo_id: str, filename: str, revision: str | None, size: int | None = None) -> Path:
    """A small file into the HF cache (or from it, when the Hub is switched off or out of reach).
    `size`, the listing's, is checked first: a repository's "config" of gigabytes is not fetched."""
    from huggingface_hub import hf_hub_download

    from .reach import reachable
    safe_names.repo_file(repo_id, filename)
    require_small(repo_id, filename, size)
    cached_only = offline() or not reachable()
    with hub_errors(repo_id, filename):
        return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir(),
                                    endpoint=endpoint(), local_files_only=cached_only))


def require_small(repo_id: str, filename: str, size: int | None) -> None:
    """HubError when the listing's `size` of a file that should be small (a config, an index) is not."""
    if size is not None and size > MAX_JSON_BYTES:
        raise HubError(repo_id, f"{filename} is {format_bytes(size)}, not the small file it should be")


def small_json(repo_id: str, filename: str, revision: str | None, size: int | None = None) -> dict:
    """A small JSON file of the repository (config, weight index) as a dict; HubError naming the file
    when it is too large or not a JSON object."""
    return read_small_json(repo_id, filename, download_small(repo_id, filename, revision, size))


def read_small_json(repo_id: str, filename: str, path: Path) -> dict:
    """`path`, the repository's `filename` fetched, read as a JSON object; HubError naming it otherwise."""
    try:
        return read_json_object(path)
    except JsonInputError as exc:
        raise HubError(repo_id, f"{filename}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise HubError(repo_id, f"{filename}: cannot be read from the cache ({exc})") from None


def safetensors_header(repo_id: str, filename: str, revision: str | None, size: int | None = None) -> tuple[bytes, int]:
    """(the header's JSON bytes, the length of the tensor data after them) of a safetensors file on the
    Hub; `size` (from the listing) is checked against what the header says."""
    from huggingface_hub import hf_hub_url
    url = hf_hub_url(repo_id, safe_names.repo_file(repo_id, filename), revision=revision, endpoint=endpoint())
    with hub_errors(repo_id, filename):
        first = hub_get(url, headers={"Range": f"bytes=0-{FIRST_BYTES - 1}"}).content
        if len(first) < 8:
            raise HubError(repo_id, f"{filename}: not a safetensors file (only {len(first)} bytes)")
        n = struct.unpack("<Q", first[:8])[0]
        if n > MAX_HEADER or (size is not None and 8 + n > size):
            raise HubError(repo_id, f"{filename}: its header claims {n:,} bytes"
                                    f"{f' in a {size:,}-byte file' if size is not None else ''}; not a safetensors "
                                    "file LoRA Deck can read")
        header = first[8:8 + n] if 8 + n <= len(first) else \
            hub_get(url, headers={"Range": f"bytes=8-{n + 7}"}).content[:n]
    if len(header) != n:
        raise HubError(repo_id, f"{filename}: the Hub sent {len(header):,} of the header's {n:,} bytes")
    data = size - 8 - n if size is not None else _data_end(repo_id, filename, header)
    if not 0 <= data <= MAX_DATA:
        raise HubError(repo_id, f"{filename}: {data:,} bytes of tensor data is not a plausible size")
    return header, data


def _data_end(repo_id: str, filename: str, header: bytes) -> int:
    """Where the last tensor ends, by the header (when the listing gave no size)."""
    try:
        entries = parse_json(header)
        return max((int(v["data_offsets"][1]) for k, v in entries.items() if k != "__metadata__"), default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise HubError(repo_id, f"{filename}: the safetensors header is not valid JSON with data_offsets") from None


def write_header_only(path: Path, header: bytes, data_length: int) -> None:
    """A safetensors file with this header (byte for byte) and zeros (sparse where the OS allows) for data."""
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        f.truncate(8 + len(header) + data_length)


def adapter_skeleton(repo_id: str, revision: str, files: list[str], dest: Path,
                     sizes: dict[str, int | None] | None = None) -> Path:
    """Build the header-only copy of the repo's adapter in `dest` (a new folder)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in files:
        if "/" in name:
            continue       # top-level adapters only; subfolders are other checkpoints
        if name in SMALL_FILES:
            shutil.copyfile(download_small(repo_id, name, revision, (sizes or {}).get(name)), dest / name)
        elif name.endswith(".safetensors"):
            header, data = safetensors_header(repo_id, name, revision, (sizes or {}).get(name))
            write_header_only(dest / safe_names.repo_file(repo_id, name), header, data)
    return dest


def hub_base_info(repo_id: str, revision: str | None = None):
    """BaseModelInfo for a Hub model from its config.json and safetensors headers only (one file, or
    the shards an index names)."""
    from ..core.base_model import base_info_from_hf
    from .details import model_info
    info = model_info(repo_id, revision)
    sizes = {s.rfilename: (s.lfs.size if s.lfs else s.size) for s in info.siblings or []}
    config = small_json(repo_id, "config.json", info.sha, sizes.get("config.json"))
    if "model.safetensors" in sizes:
        shards = ["model.safetensors"]
    elif "model.safetensors.index.json" in sizes:
        index = small_json(repo_id, "model.safetensors.index.json", info.sha, sizes.get("model.safetensors.index.json"))
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict):
            raise HubError(repo_id, "model.safetensors.index.json has no weight_map")
        shards = sorted({str(v) for v in weight_map.values()})
    else:
        raise HubError(repo_id, "no safetensors weights (model.safetensors or an index) to read the shapes from")
    shapes = {}
    for shard in shards:
        header, _ = safetensors_header(repo_id, shard, info.sha, sizes.get(shard))
        try:
            entries = parse_json(header)
            shapes.update({name: tuple(int(d) for d in t["shape"]) for name, t in entries.items()
                           if name != "__metadata__"})
        except (ValueError, TypeError, KeyError, AttributeError):
            raise HubError(repo_id, f"{shard}: the safetensors header is not valid JSON with shapes") from None
    return base_info_from_hf(config, shapes, name=repo_id, upstream_ids=[repo_id])
