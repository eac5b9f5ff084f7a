"""The one "same file as before" test every cache keys on (adapters_backend/file_identity.py)."""
import os

import pytest

from adapters_backend.file_identity import file_identity, folder_identity, source_identity, stat_identity


def test_a_file_rewritten_in_place_with_the_same_size_gets_a_new_identity(tmp_path):
    f = tmp_path / "adapter.gguf"
    f.write_bytes(b"a" * 64)
    before = file_identity(f)
    f.write_bytes(b"b" * 64)
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))   # coarse clocks: make the change visible
    assert file_identity(f) != before
    assert stat_identity(f)[1] == 64


def test_two_paths_to_one_file_share_an_identity(tmp_path):
    f = tmp_path / "real.safetensors"
    f.write_bytes(b"x")
    link = tmp_path / "link.safetensors"
    link.symlink_to(f)
    assert file_identity(link) == file_identity(f)
    assert source_identity(tmp_path / "." / "real.safetensors") == source_identity(f)


def test_a_folder_changes_identity_when_any_file_in_it_changes(tmp_path):
    d = tmp_path / "peft"
    (d / "sub").mkdir(parents=True)
    (d / "adapter_config.json").write_text("{}")
    (d / "sub" / "adapter_model.safetensors").write_bytes(b"1")
    before = source_identity(d)
    assert before.startswith(str(d.resolve()) + "|")
    (d / "sub" / "adapter_model.safetensors").write_bytes(b"22")
    assert source_identity(d) != before
    same = folder_identity(d)
    (d / "extra.txt").write_text("new file")
    assert folder_identity(d) != same


def test_something_that_is_not_there_is_an_error_not_a_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone"):
        source_identity(tmp_path / "gone")
    with pytest.raises(OSError):
        file_identity(tmp_path / "gone")
