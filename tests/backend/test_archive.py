"""Hostile archives: traversal, symlinks, bombs, lies about sizes — refused, nothing written outside."""
from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from adapters_backend.errors import AdapterFormatError
from adapters_backend.formats.archive import MAX_FILES, check_zip, extract_zip, unpacked_root


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


@pytest.mark.parametrize("name", [
    "foo/D:evil.json", "D:evil.json", "adapter/c:x", "//server/share/evil.json", "\\\\server\\share\\evil.json",
    "a\\..\\..\\evil.json",
])
def test_windows_drive_and_unc_paths_are_refused_on_every_platform(tmp_path, name):
    z = _zip(tmp_path / "w.zip", {"ad/adapter_config.json": b"{}", name: b"pwned"})
    with pytest.raises(AdapterFormatError, match="points outside the archive"):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.rglob("evil.json"))


@pytest.mark.parametrize("name, reason", [
    ("ad/CON", "reserved device name"), ("ad/nul.json", "reserved device name"), ("ad/COM1.txt", "reserved"),
    ("ad/lpt9", "reserved"), ("ad/trailing./x.json", "ends with a dot or a space"),
    ("ad/space /x.json", "ends with a dot or a space"), ("ad/what?.json", "Windows does not allow"),
    ("ad/a|b.json", "Windows does not allow"), ("ad/\x01ctl.json", "control characters"),
])
def test_names_windows_cannot_hold_are_refused_on_every_platform(tmp_path, name, reason):
    z = _zip(tmp_path / "n.zip", {"ad/adapter_config.json": b"{}", name: b"x"})
    with pytest.raises(AdapterFormatError, match=f"is not a safe file name: .*{reason}"):
        check_zip(z)
    with pytest.raises(AdapterFormatError):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_names_that_meet_on_a_case_insensitive_disk_are_refused(tmp_path):
    z = _zip(tmp_path / "c.zip", {"ad/adapter_config.json": b"{}", "ad/Adapter_Config.json": b"{\"evil\": 1}"})
    with pytest.raises(AdapterFormatError, match="two entries for"):
        check_zip(z)


def test_entries_sharing_one_stored_stream_are_refused(tmp_path):
    """Many central-directory entries pointing at the same data: each entry's own ratio is 1, but
    together they would write 300 times the archive's size."""
    z = _zip(tmp_path / "overlap.zip", {"a000.bin": bytes(range(256)) * 8192}, compression=zipfile.ZIP_STORED)
    data = z.read_bytes()
    cd = data.rfind(b"PK\x01\x02")
    eocd = data.rfind(b"PK\x05\x06")
    record = data[cd:eocd]
    name_at = 46
    copies = [record[:name_at] + f"a{i:03d}.bin".encode() + record[name_at + 8:] for i in range(300)]
    new_cd = b"".join(copies)
    end = bytearray(data[eocd:])
    end[8:10] = end[10:12] = (300).to_bytes(2, "little")
    end[12:16] = len(new_cd).to_bytes(4, "little")
    z.write_bytes(data[:cd] + new_cd + bytes(end))
    assert len(zipfile.ZipFile(z).infolist()) == 300
    with pytest.raises(AdapterFormatError, match="expand 2..× its size"):
        extract_zip(z, tmp_path / "out")
    assert not (tmp_path / "out").exists()
