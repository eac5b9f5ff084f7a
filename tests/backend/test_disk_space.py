"""Writing on a disk without room: a long write is refused before its first byte when the disk
cannot hold it, and a write the operating system stops anyway is reported naming the output, with
nothing half-written left behind."""
from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from adapters_backend import disk_space
from adapters_backend.disk_space import WriteFailed, check_room, writing
from adapters_backend.errors import BackendError

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "adapters_backend" / "demo" / "assets"
DEMO_MODEL = ASSETS / "model" / "tiny-deck-demo.gguf"
SHOUT = ASSETS / "adapters" / "shout-peft"
Usage = namedtuple("Usage", "total used free")


def test_writing_names_the_file_for_the_errors_a_user_can_fix():
    for code, words in ((errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only"),
                        (errno.EACCES, "permission denied")):
        with pytest.raises(WriteFailed) as got, writing("/data/out.gguf"):
            raise OSError(code, os.strerror(code))
        assert str(got.value).startswith("cannot write /data/out.gguf: ") and words in str(got.value)
        assert isinstance(got.value, BackendError) and isinstance(got.value, OSError)
        assert got.value.errno == code
    with pytest.raises(FileNotFoundError), writing("/data/out.gguf"):     # not the disk's: kept as it is
        raise FileNotFoundError(errno.ENOENT, "gone")
    with pytest.raises(ValueError), writing("/data/out.gguf"):
        raise ValueError("a bug stays a bug")


def test_check_room_compares_with_the_free_space_of_the_nearest_existing_folder(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(disk_space.shutil, "disk_usage", lambda p: (seen.append(Path(p)), Usage(10**9, 0, 5000))[1])
    check_room(tmp_path / "not" / "yet", 5000, "out.gguf")                 # exactly fits
    assert seen == [tmp_path]
    with pytest.raises(WriteFailed, match=r"cannot write out\.gguf: it needs 5\.0 kB and the disk holding .* "
                                          r"has 5\.0 kB free") as got:
        check_room(tmp_path, 5001, "out.gguf")
    assert got.value.errno == errno.ENOSPC


def _run_limited(args, limit: int, env: dict) -> subprocess.CompletedProcess:
    """The CLI in a child whose files may not grow past `limit` bytes (RLIMIT_FSIZE: writes past it fail
    with EFBIG, as writes on a full disk fail with ENOSPC). The child sets the limit itself: no
    preexec_fn in this threaded process."""
    code = ("import resource, signal, sys\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"        # an error from write(), not a signal
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
            "from adapters_backend.cli.main import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    return subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(os.name == "nt", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("command", ["convert", "merge"])
def test_a_write_the_system_stops_names_the_output_and_leaves_nothing(command, tmp_path):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "result.gguf"
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1",
               LORADECK_DATA_DIR=str(tmp_path / "data"), LORADECK_CACHE_DIR=str(tmp_path / "cache"))
    args = (["convert", str(SHOUT), "--base", str(DEMO_MODEL), "-o", str(out)] if command == "convert" else
            ["merge", "--base", str(DEMO_MODEL), "--adapter", str(SHOUT), "-o", str(out)])
    done = _run_limited(args, 64 * 1024, env)
    assert done.returncode == 2, done.stderr
    assert f"cannot write {out}: the file is larger than the system allows here" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(out_dir.iterdir()) == []                        # no output, no temporary file
    assert _run_limited(args, 64 << 20, env).returncode == 0    # with room, the same command works
    assert out.stat().st_size > 64 * 1024


def test_a_merge_without_room_is_refused_before_its_first_byte(tmp_path, monkeypatch):
    from adapters_backend.merge.gguf_merge import merge_into_gguf
    needed = DEMO_MODEL.stat().st_size
    monkeypatch.setattr(disk_space.shutil, "disk_usage", lambda p: Usage(10**12, 0, needed // 2))
    out = tmp_path / "merged.gguf"
    with pytest.raises(WriteFailed, match=rf"cannot write {out}: it needs 1\.\d MB and the disk holding"):
        merge_into_gguf(DEMO_MODEL, [(SHOUT, 1.0)], out)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(disk_space.shutil, "disk_usage", lambda p: Usage(10**12, 0, needed * 2))
    merge_into_gguf(DEMO_MODEL, [(SHOUT, 1.0)], out)
    assert out.stat().st_size > needed * 0.9


def test_an_install_without_room_leaves_the_library_as_it_was(tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_DATA_DIR", str(tmp_path / "data"))
    from adapters_backend.library import Library
    lib = Library()
    lib.install(str(ASSETS / "adapters" / "pirate-kohya.safetensors"))
    before = sorted(p.relative_to(lib.root) for p in lib.root.rglob("*"))
    size = sum(f.stat().st_size for f in SHOUT.rglob("*") if f.is_file())
    monkeypatch.setattr(disk_space.shutil, "disk_usage", lambda p: Usage(10**12, 0, size - 1))
    with pytest.raises(WriteFailed, match="cannot write the library's copy of shout-peft: it needs"):
        lib.install(str(SHOUT))
    assert sorted(p.relative_to(lib.root) for p in lib.root.rglob("*")) == before
    assert [e.name for e in Library().list()] == [e.name for e in lib.list()] and len(lib.list()) == 1
    monkeypatch.setattr(disk_space.shutil, "disk_usage", lambda p: Usage(10**12, 0, size))
    lib.install(str(SHOUT))
    assert len(Library().list()) == 2


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_an_output_that_is_a_folder_a_device_or_a_pipe_is_refused_and_left_alone(tmp_path, capsys):
    """`-o /dev/null` run as root replaced the system's /dev/null with the converted file (an atomic
    write renames its temporary file onto the name); now only a missing name, a file or a symlink is
    replaced."""
    from adapters_backend.cli.main import main
    pipe, folder, in_the_way = tmp_path / "pipe", tmp_path / "folder", tmp_path / "a-file"
    os.mkfifo(pipe)
    folder.mkdir()
    in_the_way.write_text("x")
    for out, said in ((pipe, "it is not a file (a device, a pipe or a socket)"), (folder, "it is a folder"),
                      (in_the_way / "x.gguf", "a file is in the way of its folder")):
        assert main(["convert", str(SHOUT), "--base", str(DEMO_MODEL), "-o", str(out)]) == 2
        assert f"cannot write {out}: {said}" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode) and list(folder.iterdir()) == [] and in_the_way.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "folder", "pipe"]      # nothing left beside


def test_a_forced_merge_replaces_a_folder_but_never_a_file(tmp_path):
    from adapters_backend.merge.common import MergeError, finish_output_dir
    staging = tmp_path / ".staging"
    staging.mkdir()
    (staging / "model.safetensors").write_text("new")
    target = tmp_path / "not-a-folder"
    target.write_text("keep")
    with pytest.raises(MergeError, match="exists and is not a folder"):
        finish_output_dir(staging, target, overwrite=True)
    assert target.read_text() == "keep"
    old = tmp_path / "merged"
    old.mkdir()
    (old / "model.safetensors").write_text("old")
    finish_output_dir(staging, old, overwrite=True)
    assert (old / "model.safetensors").read_text() == "new"
