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
