"""A download the disk cannot hold is refused before its first byte (huggingface_hub only warns and
then fills the disk); the disk's free space counts what an earlier attempt already left."""
from __future__ import annotations

from collections import namedtuple

import pytest

from adapters_backend import disk_space
from adapters_backend import hub as backend_hub
from adapters_backend.disk_space import WriteFailed
from adapters_backend.hub.client import cache_dir
from adapters_backend.units import format_bytes

Usage = namedtuple("Usage", "total used free")


def test_a_download_without_room_is_refused_before_any_byte(hub, monkeypatch):
    files = hub.repos["alice/big-lora"].commits[-1][1]
    size = len(files["adapter_model.safetensors"]) + len(files["adapter_config.json"])
    monkeypatch.setattr(disk_space.shutil, "disk_usage", lambda p: Usage(10**12, 0, size // 2))
    hub.requests.clear()
    with pytest.raises(WriteFailed, match=rf"it needs {format_bytes(size)} and the disk holding "
                                          rf".*models--alice--big-lora has {format_bytes(size // 2)} free"):
        backend_hub.download_files("alice/big-lora", ["adapter_config.json", "adapter_model.safetensors"])
    assert not [p for m, p, _h in hub.requests if m == "GET" and "/resolve/" in p]
    assert not [p for p in cache_dir().rglob("*") if p.is_file() and "blobs" in p.parts]

    monkeypatch.setattr(disk_space.shutil, "disk_usage", lambda p: Usage(10**12, 0, size))
    folder = backend_hub.download_files("alice/big-lora", ["adapter_config.json", "adapter_model.safetensors"])
    assert (folder / "adapter_model.safetensors").read_bytes() == files["adapter_model.safetensors"]


def test_only_a_files_own_partial_counts_as_written(hub, monkeypatch):
    """A download of another file left off (a cancelled Q8 before this Q4) leaves its partial in the same
    repository: it does not shorten this download's room check; this file's own partial does."""
    import hashlib

    files = hub.repos["alice/big-lora"].commits[-1][1]
    weights = files["adapter_model.safetensors"]
    size = len(weights) + len(files["adapter_config.json"])
    blobs = cache_dir() / "models--alice--big-lora" / "blobs"
    blobs.mkdir(parents=True)
    other = blobs / f"{'e' * 64}.loradeck-partial"                  # another file's, as big as this download
    other.write_bytes(b"\0" * size)
    monkeypatch.setattr(disk_space.shutil, "disk_usage", lambda p: Usage(10**12, 0, size // 2))
    with pytest.raises(WriteFailed, match=rf"it needs {format_bytes(size)}"):
        backend_hub.download_files("alice/big-lora", ["adapter_config.json", "adapter_model.safetensors"])

    own = blobs / f"{hashlib.sha256(weights).hexdigest()}.loradeck-partial"
    own.write_bytes(weights[: len(weights) * 3 // 4])                 # three quarters already here
    folder = backend_hub.download_files("alice/big-lora", ["adapter_config.json", "adapter_model.safetensors"])
    assert (folder / "adapter_model.safetensors").read_bytes() == weights
    assert other.exists()                                             # never deleted on a guess
