"""The disk caches stay within their budget (adapters_backend/disk_cache.py): the least recently used
entries go first, nothing used within a day goes, names that are not the cache's own stay, leftovers of
unfinished writes go once stale, a link inside an entry is removed, never what it points to; and the
real caches (converted adapters, unpacked zips) trim themselves and rebuild what they lost."""
from __future__ import annotations

import os
import re
import time
import zipfile
from pathlib import Path

import pytest

from adapters_backend import disk_cache
from adapters_backend.disk_cache import KEEP_RECENT_SECONDS, trim

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "adapters_backend" / "demo" / "assets"
MODEL = DEMO / "model" / "tiny-deck-demo.gguf"
ADAPTERS = [DEMO / "adapters" / "shout-peft", DEMO / "adapters" / "reverse-ludwig",
            DEMO / "adapters" / "pirate-kohya.safetensors"]
KEY = re.compile(r"[0-9a-f]{32}")
DAY = 24 * 3600


def _file(path: Path, size: int, age: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    _age(path, age)
    return path


def _age(path: Path, age: float) -> None:
    t = time.time() - age
    os.utime(path, (t, t))


def test_the_least_recently_used_go_first_and_nothing_recent_goes(tmp_path):
    a, b, c = "a" * 32, "b" * 32, "c" * 32
    for key, age in ((a, 3 * DAY), (b, 2 * DAY), (c, 3600)):
        _file(tmp_path / f"{key}.gguf", 600, age)
        _file(tmp_path / f"{key}.json", 10, age)
    foreign = _file(tmp_path / "my-notes.txt", 10_000, 9 * DAY)         # not a cache entry: stays
    stale = _file(tmp_path / f".{b}.gguf.x1.partial", 50, 2 * DAY)       # a write that never finished
    fresh = _file(tmp_path / f"{c}.1234.incomplete", 50, 60)             # one that may still run

    removed = trim(tmp_path, 1300, KEY)
    assert sorted(p.name for p in removed) == sorted([f"{a}.gguf", f"{a}.json", stale.name])
    assert {p.name for p in tmp_path.iterdir()} == {f"{b}.gguf", f"{b}.json", f"{c}.gguf", f"{c}.json",
                                                    foreign.name, fresh.name}
    trim(tmp_path, 0, KEY)                                               # over budget, but c was used an hour ago
    assert {p.name for p in tmp_path.iterdir()} == {f"{c}.gguf", f"{c}.json", foreign.name, fresh.name}


def test_a_folder_entry_is_measured_whole_and_its_links_are_not_followed(tmp_path):
    cache, outside = tmp_path / "unpacked", tmp_path / "user"
    precious = _file(outside / "precious.bin", 5_000, 0)
    entry = cache / ("d" * 64)
    _file(entry / "adapter" / "adapter_model.safetensors", 3_000, 0)
    (entry / "adapter" / "link").symlink_to(precious)
    (entry / "dir-link").symlink_to(outside, target_is_directory=True)
    newer = _file(cache / ("e" * 64) / "adapter_config.json", 10, 0)
    _age(entry, 2 * DAY)
    _age(newer.parent, DAY + 60)
    assert trim(cache, 4_000, re.compile(r"[0-9a-f]{64}")) == []     # 3,010 and two links, not 5,000 more
    assert trim(cache, 100, re.compile(r"[0-9a-f]{64}")) == [entry]
    assert not entry.exists() and newer.exists()
    assert precious.read_bytes() == b"x" * 5_000 and outside.is_dir()


@pytest.fixture
def small_budgets(tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(disk_cache, "CACHES", dict(disk_cache.CACHES))

    def set_budget(name: str, size: int) -> None:
        disk_cache.CACHES[name] = (size, disk_cache.CACHES[name][1])
    return set_budget


def test_converted_adapters_are_trimmed_and_rebuilt_when_needed(small_budgets, tmp_path):
    from adapters_backend.convert.cache import convert_cached, converted_dir

    first = convert_cached(ADAPTERS[0], MODEL)
    original = first.path.read_bytes()
    second = convert_cached(ADAPTERS[1], MODEL)
    sizes = {p.name: p.stat().st_size for p in converted_dir().iterdir()}
    small_budgets("converted", sum(sizes.values()))                    # room for the two there are
    for p in converted_dir().glob(first.path.stem + ".*"):
        _age(p, 3 * DAY)
    for p in converted_dir().glob(second.path.stem + ".*"):
        _age(p, 2 * DAY)
    assert convert_cached(ADAPTERS[1], MODEL).cached                   # a hit makes the second recent again
    third = convert_cached(ADAPTERS[2], MODEL)                          # over budget now: the first goes
    assert not first.path.exists() and second.path.exists() and third.path.exists()
    assert not list(converted_dir().glob(first.path.stem + ".*"))
    again = convert_cached(ADAPTERS[0], MODEL)
    assert not again.cached and again.path == first.path and again.path.read_bytes() == original


def test_unpacked_zips_are_trimmed_and_unpacked_again_when_needed(small_budgets, tmp_path):
    from adapters_backend.formats.registry import unpack_if_archive
    zips = []
    for i, src in enumerate(ADAPTERS[:2]):
        z = tmp_path / f"adapter{i}.zip"
        with zipfile.ZipFile(z, "w") as out:
            for f in sorted(src.rglob("*")):
                if f.is_file():
                    out.write(f, f"{src.name}/{f.relative_to(src)}")
        zips.append(z)
    small_budgets("unpacked", 1)
    one = unpack_if_archive(zips[0])
    top = one
    while top.parent.name != "unpacked":
        top = top.parent
    assert one.is_dir()
    for p in [top, *top.rglob("*")]:
        _age(p, KEEP_RECENT_SECONDS + 60)
    two = unpack_if_archive(zips[1])
    assert two.is_dir() and not top.exists()
    assert unpack_if_archive(zips[0]) == one and (one / "adapter_config.json").is_file()
