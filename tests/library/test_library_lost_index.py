"""A lost, emptied or damaged index never deletes or hides an adapter: the index is rebuilt from the
adapter folders, folders it does not know are listed again or kept and reported, and a folder is
deleted only by `remove` or by the recovery of an install whose own staging lock proves it died."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters_backend.errors import LibraryError
from adapters_backend.library import Library

REPO = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict:
    return dict(os.environ, LORADECK_DATA_DIR=str(tmp_path / "data"), LORADECK_CACHE_DIR=str(tmp_path / "cache"),
                PYTHONPATH=str(REPO))


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed `loradeck` command, run as the user would (its own process)."""
    return subprocess.run([str(Path(sys.executable).parent / "loradeck"), *args], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def two(env_dirs, make_peft):
    lib = Library()
    a = lib.install(str(make_peft("alpha", seed=1)))
    b = lib.install(str(make_peft("beta", seed=2)))
    return lib, a, b


def _folders(lib: Library) -> set[str]:
    return {p.name for p in (lib.root / "adapters").iterdir()}


@pytest.mark.parametrize("command", [("list", "--json"), ("library", "list", "--json")])
def test_deleted_index_is_rebuilt_and_nothing_is_deleted(two, tmp_path, command):
    lib, a, b = two
    (lib.root / "index.json").unlink()
    out = _cli(tmp_path, *command)
    assert out.returncode == 0, out.stderr
    assert {e["id"] for e in json.loads(out.stdout)} == {a.id, b.id}
    assert "index was missing; rebuilt 2 entries" in out.stderr
    assert _folders(lib) == {a.id, b.id}
    assert (a.path / "adapter_model.safetensors").is_file() and (b.path / "adapter_model.safetensors").is_file()
    # the rebuilt index is written, and the next run has nothing to report
    assert {e["id"] for e in json.loads((lib.root / "index.json").read_text())["entries"]} == {a.id, b.id}
    again = _cli(tmp_path, *command)
    assert again.returncode == 0 and "warning" not in again.stderr


def test_empty_index_with_folders_lists_them_again(two):
    lib, a, b = two
    (lib.root / "index.json").write_text(json.dumps({"schema": "loradeck.library/1", "entries": []}))
    lib2 = Library()
    assert {e.id for e in lib2.list()} == {a.id, b.id}
    assert any("listed again" in p and a.id in p and b.id in p for p in lib2.problems)
    assert _folders(lib) == {a.id, b.id}
    assert Library().get(a.id).name == a.name and not Library().problems


def test_index_naming_a_missing_folder_keeps_the_entry_and_the_others(two):
    lib, a, b = two
    index = json.loads((lib.root / "index.json").read_text())
    ghost = dict(index["entries"][0], id="ghost", name="ghost", sha256="0" * 64, path="adapters/ghost/x")
    index["entries"].append(ghost)
    (lib.root / "index.json").write_text(json.dumps(index))
    lib2 = Library()
    entries = {e.id: e for e in lib2.list()}
    assert entries["ghost"].missing and not entries[a.id].missing and not entries[b.id].missing
    assert any("ghost" in p and "files are gone" in p for p in lib2.problems)
    assert _folders(lib) == {a.id, b.id}
    lib2.remove("ghost")                      # the user can clear it
    assert {e.id for e in Library().list()} == {a.id, b.id}


def test_an_index_entry_with_values_of_the_wrong_kind_keeps_the_adapter_listed(two):
    """A damaged or hand-edited index: each value of another kind is left out for its default (the
    library's views format the rank and the size: a rank of "8" made listing the library fail)."""
    lib, a, b = two
    index = json.loads((lib.root / "index.json").read_text())
    index["entries"][0].update({"name": ["x"], "size": "big", "rank": "8", "alpha": [1], "rank_range": "ab",
                                "alpha_range": [1, "a"], "installed": 5, "license": 3, "notes": None,
                                "stored": "elsewhere", "format": {"a": 1}})
    (lib.root / "index.json").write_text(json.dumps(index))
    entries = {e.id: e for e in Library().list()}
    damaged = entries[a.id]
    assert damaged.name == a.id and damaged.path == a.path and not damaged.missing
    assert (damaged.rank, damaged.alpha, damaged.size, damaged.notes, damaged.stored) == (None, None, 0, "", "copy")
    assert damaged.rank_text == "" and damaged.alpha_text == ""
    assert damaged.sha256 == a.sha256 and damaged.variant == a.variant                    # what fits is kept
    assert entries[b.id] == b
    assert _folders(lib) == {a.id, b.id}


def test_folder_without_entry_json_is_kept_and_reported(two, make_peft):
    lib, a, b = two
    (a.path.parent / "entry.json").unlink()   # e.g. copied in by hand, or a damaged folder
    stray = lib.root / "adapters" / "my-own"
    stray.mkdir()
    (stray / "weights.bin").write_bytes(b"precious")
    (lib.root / "index.json").unlink()        # and the index is lost too
    for _ in range(2):
        lib2 = Library()
        assert {e.id for e in lib2.list()} == {b.id}
        reported = [p for p in lib2.problems if "not an installed adapter" in p]
        assert any(a.id in p for p in reported) and any("my-own" in p for p in reported)
    # installing, renaming and removing others leaves them alone, and a new id never takes their name
    c = lib2.install(str(make_peft("my-own", seed=3)))
    assert c.id != "my-own"
    lib2.remove(b.id)
    assert (stray / "weights.bin").read_bytes() == b"precious"
    assert (a.path / "adapter_model.safetensors").is_file()


def test_damaged_index_with_a_hostile_id_deletes_nothing_outside(two, tmp_path):
    lib, a, b = two
    victim = lib.root / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("x")
    index = json.loads((lib.root / "index.json").read_text())
    index["entries"].append(dict(index["entries"][0], id="../victim", name="evil"))
    (lib.root / "index.json").write_text(json.dumps(index))
    lib2 = Library()                          # treated as a damaged index: backed up, rebuilt from the folders
    assert any("unreadable" in p and "not a library folder name" in p for p in lib2.problems)
    with pytest.raises(LibraryError):
        lib2.remove("evil")
    assert (victim / "keep.txt").exists()
    assert {e.id for e in lib2.list()} == {a.id, b.id}


_DIE_IN_SAVE = """
import os, sys
from adapters_backend.library import Library
from adapters_backend.library.store import IndexStore
lib = Library()
def die(self, entries):
    os.kill(os.getpid(), 9)          # killed between the folder rename and the index write
IndexStore.save = die
if sys.argv[1] == "install":
    lib.install(sys.argv[2])
else:
    lib.remove(sys.argv[2])
"""


def test_install_killed_before_the_index_write_is_undone_by_its_own_staging_lock(two, tmp_path, make_peft):
    if os.name == "nt":
        pytest.skip("SIGKILL is POSIX")
    lib, a, b = two
    run = subprocess.run([sys.executable, "-c", _DIE_IN_SAVE, "install", str(make_peft("gamma", seed=7))],
                         env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    assert _folders(lib) == {a.id, b.id, "gamma"}              # renamed into place, not in the index
    assert list((lib.root / ".staging").glob("*.commit"))
    lib2 = Library()
    assert _folders(lib2) == {a.id, b.id} and not lib2.problems
    assert {e.id for e in lib2.list()} == {a.id, b.id}
    assert not any((lib.root / ".staging").iterdir())


def test_remove_killed_before_the_index_write_is_finished(two, tmp_path):
    if os.name == "nt":
        pytest.skip("SIGKILL is POSIX")
    lib, a, b = two
    run = subprocess.run([sys.executable, "-c", _DIE_IN_SAVE, "remove", a.id], env=_env(tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr
    lib2 = Library()
    assert {e.id for e in lib2.list()} == {b.id} and _folders(lib2) == {b.id} and not lib2.problems


def test_commit_marker_never_deletes_a_folder_it_did_not_write(two):
    lib, a, b = two
    (lib.root / ".staging").mkdir(exist_ok=True)
    # a dead install claims a's folder, with another sha256: the folder is a's, in the index, kept
    dead1, dead2 = "fe" * 16, "be" * 16           # staging tokens of two dead installs
    (lib.root / ".staging" / f"{dead1}.commit").write_text(json.dumps({"id": a.id, "sha256": "f" * 64}))
    (lib.root / ".staging" / f"{dead1}.lock").touch()
    # and one claims a folder the index lost, with the wrong sha256: kept and listed again
    (lib.root / "index.json").write_text(json.dumps({"schema": "loradeck.library/1", "entries": []}))
    (lib.root / ".staging" / f"{dead2}.commit").write_text(json.dumps({"id": b.id, "sha256": "0" * 64}))
    lib2 = Library()
    assert _folders(lib2) == {a.id, b.id}
    assert {e.id for e in lib2.list()} == {a.id, b.id}
    assert not any((lib.root / ".staging").iterdir())


_HOLD = """
import sys, time
from filelock import FileLock
lock = FileLock(sys.argv[1], timeout=0)
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("which", ["library", "staging"])
def test_lock_of_a_killed_process_is_released(env_dirs, tmp_path, which):
    if os.name == "nt":
        pytest.skip("SIGKILL is POSIX")
    lib = Library(lock_timeout=1)
    (lib.root / ".staging").mkdir(exist_ok=True)
    token = "ca" * 16
    target = lib.root / ".lock" if which == "library" else lib.root / ".staging" / f"{token}.lock"
    (lib.root / ".staging" / token).mkdir()
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        if which == "library":
            t = time.monotonic()
            with pytest.raises(LibraryError, match="still locked by another LoRA Deck process"):
                Library(lock_timeout=1)
            assert time.monotonic() - t < 10
        else:
            Library()
            assert (lib.root / ".staging" / token).is_dir()        # its install is alive
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    Library(lock_timeout=5)                                       # the OS released the dead holder's lock
    assert not (lib.root / ".staging" / token).exists()
