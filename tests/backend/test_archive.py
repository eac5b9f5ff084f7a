"""Hostile archives: traversal, symlinks, bombs, lies about sizes — refused, nothing written outside."""
from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from adapters_backend.formats.archive import MAX_FILES, check_zip, extract_zip, unpacked_root
from adapters_backend.errors import AdapterFormatError


def _zip(path: Path, entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_valid_zip_extracts_completely(tmp_path):
    z = _zip(tmp_path / "a.zip", {"ad/adapter_config.json": b"{}", "ad/adapter_model.safetensors": b"x" * 100})
    dest = extract_zip(z, tmp_path / "out")
    root = unpacked_root(dest)
    assert root.name == "ad"
    assert (root / "adapter_model.safetensors").read_bytes() == b"x" * 100
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".unzip-")]


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt", "C:/evil.txt",
                                  "..\\evil.txt"])
def test_path_traversal_refused(tmp_path, name):
    z = _zip(tmp_path / "t.zip", {"ok.txt": b"ok", name: b"pwned"})
    with pytest.raises(AdapterFormatError, match="outside the archive"):
        extract_zip(z, tmp_path / "deep" / "out")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "out").exists()
    assert not list(tmp_path.rglob("evil.txt"))


def test_symlink_entry_refused(tmp_path):
    z = tmp_path / "s.zip"
    with zipfile.ZipFile(z, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(AdapterFormatError, match="symbolic link"):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_zip_bomb_refused(tmp_path):
    z = _zip(tmp_path / "bomb.zip", {"zeros.bin": b"\0" * (50 * 1024 * 1024)})
    assert z.stat().st_size < 200_000
    with pytest.raises(AdapterFormatError, match="zip bomb"):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_size_lie_refused_while_streaming(tmp_path):
    """An entry whose real data exceeds the size its directory entry declares is stopped mid-stream."""
    z = _zip(tmp_path / "lie.zip", {"f.bin": b"a" * 5000}, compression=zipfile.ZIP_STORED)
    data = bytearray(z.read_bytes())
    # Patch the central directory's uncompressed size (offset 24 in the record) down to 10 bytes.
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24:cd + 28] = (10).to_bytes(4, "little")
    z.write_bytes(bytes(data))
    with pytest.raises(AdapterFormatError):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_too_many_entries_and_garbage(tmp_path):
    z = _zip(tmp_path / "many.zip", {f"f{i}": b"" for i in range(MAX_FILES + 1)}, zipfile.ZIP_STORED)
    with pytest.raises(AdapterFormatError, match="entries"):
        check_zip(z)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04" + b"\xff" * 100)
    with pytest.raises(AdapterFormatError, match="not a valid zip"):
        check_zip(junk)
