"""Library tests: a private data/cache dir per test and small hand-made adapters."""
from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.small_adapters import write_peft


@pytest.fixture
def env_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def make_peft(tmp_path):
    def make(name: str = "style", **kw) -> Path:
        return write_peft(tmp_path / "src" / name, **kw)
    return make


def snapshot(root: Path) -> dict:
    """Everything that defines the library's state: the index bytes and every file (lock files aside)."""
    files = {}
    for f in sorted(root.rglob("*")):
        if f.is_file() and f.name != ".lock":
            files[f.relative_to(root).as_posix()] = f.read_bytes()
    return files
