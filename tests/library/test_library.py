"""The adapter library: install / list / rename / notes / remove, duplicates, bad input, recovery."""
from __future__ import annotations

import json
import time
import zipfile

import pytest
from library.conftest import snapshot

from adapters_backend.errors import AdapterFormatError, JobCancelled, LibraryError
from adapters_backend.jobs import JobContext
from adapters_backend.library import Library, LibraryEntry, stage
from adapters_backend.library.store import IndexStore


def test_install_records_facts_and_copies(env_dirs, make_peft):
    src = make_peft("style", r=4, alpha=8)
    lib = Library()
    e = lib.install(str(src), name="My style")
    assert isinstance(e, LibraryEntry)
    assert (e.id, e.name, e.format, e.variant, e.rank, e.alpha) == ("my-style", "My style", "peft", "lora", 4, 8.0)
    assert e.base_model == "tiny-org/tiny-llama"
    assert e.source == f"local:{src.resolve()}"
    assert e.path.is_dir() and e.path.is_relative_to(lib.root) and (e.path / "adapter_config.json").exists()
    assert len(e.sha256) == 64 and e.size > 0 and e.installed.startswith("20")
    # a fresh Library (another process) sees the same entry
    again = Library().get("my-style")
    assert again.as_dict() == e.as_dict()
    assert Library().get("My style").id == "my-style"


def test_install_zip_and_safetensors_path_in_entry(env_dirs, make_peft, tmp_path):
    src = make_peft("zipped")
    z = tmp_path / "zipped.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in src.iterdir():
            zf.write(f, f"zipped/{f.name}")
    e = Library().install(str(z))
    assert e.name == "zipped" and e.format == "peft" and e.path.is_dir()
    assert e.source == f"local:{z.resolve()}"


def test_duplicate_returns_existing_entry(env_dirs, make_peft, tmp_path):
    src = make_peft("dup")
    lib = Library()
    first = lib.install(str(src))
    copy = tmp_path / "elsewhere"
    import shutil
    shutil.copytree(src, copy)
    second = lib.install(str(copy), name="other name")
    assert second.id == first.id and len(lib.list()) == 1
    assert len(list((lib.root / "adapters").iterdir())) == 1


def test_rename_notes_remove(env_dirs, make_peft):
    lib = Library()
    a = lib.install(str(make_peft("a", seed=1)))
    b = lib.install(str(make_peft("b", seed=2)))
    lib.rename(a.id, "Alpha")
    lib.set_notes("Alpha", "good for poems")
    got = Library().get(a.id)
    assert (got.name, got.notes) == ("Alpha", "good for poems")
    # the per-adapter copy follows, so a rebuilt index keeps the label
    side = json.loads((lib.root / "adapters" / a.id / "entry.json").read_text())
    assert side["name"] == "Alpha" and side["notes"] == "good for poems"
    lib.remove(b.id)
    assert [e.id for e in lib.list()] == [a.id]
    assert not (lib.root / "adapters" / b.id).exists()
    with pytest.raises(LibraryError, match="no adapter 'nope'"):
        lib.remove("nope")
    with pytest.raises(LibraryError, match="empty"):
        lib.rename(a.id, "  ")


def test_corrupt_adapter_refused_library_unchanged(env_dirs, make_peft):
    lib = Library()
    lib.install(str(make_peft("good")))
    before = snapshot(lib.root)
    bad = make_peft("bad", seed=3)
    st = bad / "adapter_model.safetensors"
    st.write_bytes(st.read_bytes()[:-100])          # truncated download
    with pytest.raises(AdapterFormatError) as info:
        lib.install(str(bad))
    assert "adapter_model.safetensors" in str(info.value) or str(bad) in str(info.value)
    assert snapshot(lib.root) == before
    with pytest.raises(AdapterFormatError, match="no such file"):
        lib.install(str(bad.parent / "missing"))
    assert snapshot(lib.root) == before


def test_crash_in_the_middle_of_the_copy_leaves_library_as_before(env_dirs, make_peft, monkeypatch):
    lib = Library()
    lib.install(str(make_peft("keep")))
    before = snapshot(lib.root)
    calls = {"n": 0}
    real = stage.copy_file

    def failing(src, dst, ctx, done, total):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real(src, dst, ctx, done, total)

    monkeypatch.setattr(stage, "copy_file", failing)
    with pytest.raises(OSError, match="No space"):
        lib.install(str(make_peft("new", seed=5)))
    assert snapshot(lib.root) == before
    assert not any((lib.root / ".staging").iterdir())


def test_cancel_during_install(env_dirs, make_peft):
    lib = Library()
    before = snapshot(lib.root)
    seen = []
    ctx = JobContext(lambda d, t, m: (seen.append((d, t, m)), ctx.cancel()))
    with pytest.raises(JobCancelled):
        lib.install(str(make_peft("cancelled")), ctx=ctx)
    assert seen and seen[0][1] > 0 and "copying" in seen[0][2]
    assert snapshot(lib.root) == before
    assert lib.list() == []


def test_crash_in_the_index_write_keeps_old_index(env_dirs, make_peft, monkeypatch):
    lib = Library()
    lib.install(str(make_peft("one", seed=1)))
    before = snapshot(lib.root)

    def boom(self, entries):
        raise OSError(5, "I/O error")
    monkeypatch.setattr(IndexStore, "save", boom)
    with pytest.raises(OSError):
        lib.install(str(make_peft("two", seed=2)))
    monkeypatch.undo()
    assert snapshot(lib.root) == before


def test_recovery_on_open(env_dirs, make_peft):
    lib = Library()
    keep = lib.install(str(make_peft("keep")))
    gone = lib.install(str(make_peft("gone", seed=9)))
    # what a kill -9 leaves: a dead staging folder, a trash folder; and a folder that is no adapter
    (lib.root / ".staging" / "deadbeef").mkdir(parents=True)
    (lib.root / ".staging" / "deadbeef" / "partial.bin").write_bytes(b"x" * 10)
    (lib.root / ".staging" / "deadbeef.lock").touch()
    (lib.root / "adapters" / "stranger").mkdir()
    (lib.root / "adapters" / "stranger" / "notes.txt").write_text("mine")
    (lib.root / ".trash" / "old").mkdir(parents=True)
    import shutil
    shutil.rmtree(gone.path.parent)          # the user deleted files behind our back
    lib2 = Library()
    assert not (lib.root / ".staging" / "deadbeef").exists()
    assert not (lib.root / ".trash").exists()
    # a folder without entry.json is kept and reported, never deleted
    assert (lib.root / "adapters" / "stranger" / "notes.txt").read_text() == "mine"
    assert any("stranger" in p and "not an installed adapter" in p for p in lib2.problems)
    # the vanished entry is reported, not dropped
    assert any("gone" in p and "files are gone" in p for p in lib2.problems)
    entries = {e.id: e for e in lib2.list()}
    assert entries[gone.id].missing and not entries[keep.id].missing
    assert "stranger" not in entries


def test_live_staging_folder_is_not_touched(env_dirs):
    from filelock import FileLock
    lib = Library()
    (lib.root / ".staging").mkdir(exist_ok=True)
    alive = "a1" * 16                         # a staging token, as Library.install names them
    lock = FileLock(lib.root / ".staging" / f"{alive}.lock", timeout=0)
    lock.acquire()
    try:
        (lib.root / ".staging" / alive).mkdir()
        # what a process killed while writing its commit marker leaves, for another (dead) install
        (lib.root / ".staging" / f".{'b2' * 16}.commit.x1y2.tmp").write_text("{")
        (lib.root / ".staging" / f".{alive}.commit.x3y4.tmp").write_text("{")
        Library()
        assert (lib.root / ".staging" / alive).exists()
        assert (lib.root / ".staging" / f".{alive}.commit.x3y4.tmp").exists()
        assert not (lib.root / ".staging" / f".{'b2' * 16}.commit.x1y2.tmp").exists()
    finally:
        lock.release()
    Library()
    assert not any((lib.root / ".staging").iterdir())


def test_corrupt_index_is_backed_up_and_rebuilt(env_dirs, make_peft):
    lib = Library()
    a = lib.install(str(make_peft("a", seed=1)), name="Alpha")
    lib.set_notes(a.id, "n1")
    lib.install(str(make_peft("b", seed=2)))
    (lib.root / "index.json").write_text('{"schema": "loradeck.library/1", "entries": [{"id": ')
    lib2 = Library()
    assert any("unreadable" in p and "rebuilt 2 entries" in p for p in lib2.problems)
    backups = list(lib.root.glob("index.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_text().endswith('"id": ')
    got = {e.id: e for e in lib2.list()}
    assert got[a.id].name == "Alpha" and got[a.id].notes == "n1" and len(got) == 2
    json.loads((lib.root / "index.json").read_text())   # valid again


def test_opens_fast_with_1000_entries(env_dirs, make_peft):
    lib = Library()
    e = lib.install(str(make_peft("one")))
    entries = {e.id: e}
    for i in range(999):
        d = e.as_dict() | {"id": f"a{i}", "name": f"adapter {i}", "sha256": f"{i:064x}"}
        entries[d["id"]] = LibraryEntry.from_json(d, lib.root)
    lib.store.save(entries)
    t = time.perf_counter()
    lib2 = Library()
    listed = lib2.list()
    assert len(listed) == 1000 and not lib2.problems
    assert time.perf_counter() - t < 1.0


def _with_rank_pattern(folder):
    """Turn a write_peft adapter (r=8, alpha=16) into one whose ranks are 4-12 and alphas 16-24."""
    import numpy as np
    from safetensors.numpy import load_file, save_file
    pattern = {"model.layers.0.self_attn.q_proj": 4, "model.layers.1.self_attn.v_proj": 12}
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    for name, r in pattern.items():
        key = f"base_model.model.{name}"
        a, b = tensors[f"{key}.lora_A.weight"], tensors[f"{key}.lora_B.weight"]
        tensors[f"{key}.lora_A.weight"] = np.ones((r, a.shape[1]), np.float32) * 0.01
        tensors[f"{key}.lora_B.weight"] = np.ones((b.shape[0], r), np.float32) * 0.01
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    cfg = json.loads((folder / "adapter_config.json").read_text())
    cfg["rank_pattern"] = pattern
    cfg["alpha_pattern"] = {"model.layers.1.self_attn.v_proj": 24}
    (folder / "adapter_config.json").write_text(json.dumps(cfg))
    return folder


def test_list_shows_rank_and_alpha_ranges(env_dirs, make_peft, capsys):
    from adapters_backend.cli.main import main
    e = Library().install(str(_with_rank_pattern(make_peft("pattern"))), name="Pattern")
    assert (e.rank, e.alpha, e.rank_range, e.alpha_range) == (8, 16.0, [4, 12], [16.0, 24.0])
    assert (e.rank_text, e.alpha_text) == ("4–12", "16–24")
    Library().install(str(make_peft("plain", r=4, alpha=8, seed=5)), name="Plain")
    assert main(["library", "list"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "peft lora r=4–12 α=16–24 " in rows["pattern"] and "peft lora r=4 α=8 " in rows["plain"]
    assert main(["library", "list", "--json"]) == 0
    listed = {d["id"]: d for d in json.loads(capsys.readouterr().out)}
    assert listed["pattern"]["rank_range"] == [4, 12] and listed["pattern"]["rank"] == 8


def test_entries_installed_before_ranges_were_recorded_still_list(env_dirs, make_peft, capsys):
    from adapters_backend.cli.main import main
    lib = Library()
    lib.install(str(_with_rank_pattern(make_peft("pattern"))), name="Pattern")
    index = lib.root / "index.json"
    raw = json.loads(index.read_text())
    for entry in (raw["entries"] if isinstance(raw, dict) else raw):
        entry.pop("rank_range"), entry.pop("alpha_range")
    index.write_text(json.dumps(raw))
    old = Library().get("pattern")
    assert old.rank_range is None and (old.rank_text, old.alpha_text) == ("8", "16")
    assert main(["library", "list"]) == 0
    assert "peft lora r=8 α=16 " in capsys.readouterr().out


def test_cli_rename_notes_remove_with_and_without_json(env_dirs, make_peft, capsys):
    from adapters_backend.cli.main import main
    src = make_peft("style")
    assert main(["install", str(src), "--name", "My style", "--json"]) == 0          # the top-level form
    assert json.loads(capsys.readouterr().out)["id"] == "my-style"
    assert main(["library", "rename", "my-style", "Style", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "Style"
    assert main(["rename", "Style", "Style 2"]) == 0
    assert capsys.readouterr().out == "my-style is now 'Style 2'\n"
    assert main(["library", "notes", "my-style", "for pirates", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] == "for pirates"
    assert main(["library", "notes", "my-style", "for everyone"]) == 0
    assert capsys.readouterr().out == "notes of 'Style 2' (my-style) set\n"
    assert main(["list", "--json"]) == 0
    assert [e["notes"] for e in json.loads(capsys.readouterr().out)] == ["for everyone"]
    assert main(["library", "remove", "Style 2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"]["id"] == "my-style"
    assert Library().list() == []
    main(["install", str(src)])
    capsys.readouterr()
    assert main(["remove", "style"]) == 0 and capsys.readouterr().out == "removed 'style' (style)\n"
