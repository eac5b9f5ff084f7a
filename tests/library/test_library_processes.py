"""Several processes and kill -9: the library is always "before" or "after", never between."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.small_adapters import write_peft

from adapters_backend.library import Library

REPO = Path(__file__).resolve().parents[2]
INSTALLER = """
import sys
from adapters_backend.library import Library
for src in sys.argv[1:]:
    Library().install(src)
    print("installed", src, flush=True)
"""


def _env(tmp_path):
    env = dict(os.environ, LORADECK_DATA_DIR=str(tmp_path / "data"), LORADECK_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=str(REPO))
    return env


def _check_valid(root: Path) -> int:
    lib = Library(root)                       # recovery runs here
    index = json.loads((root / "index.json").read_text()) if (root / "index.json").exists() else {"entries": []}
    ids = {e["id"] for e in index["entries"]}
    assert not lib.problems, lib.problems
    on_disk = {p.name for p in (root / "adapters").iterdir()} if (root / "adapters").exists() else set()
    assert on_disk == ids
    for e in lib.list():
        assert e.path.exists() and (e.path / "adapter_model.safetensors").exists()
    assert not (root / ".staging").exists() or not any((root / ".staging").iterdir())
    return len(ids)


@pytest.mark.slow
def test_sigkill_at_random_points(tmp_path):
    if os.name == "nt":
        pytest.skip("SIGKILL is POSIX")
    sources = [str(write_peft(tmp_path / "src" / f"k{i}", seed=i, layers=4, hidden=128)) for i in range(40)]
    root = tmp_path / "data" / "library"
    rng = random.Random(7)
    count = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", INSTALLER, *sources], env=_env(tmp_path),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # wait until installs are under way, then kill at a random moment inside the loop
        first = proc.stdout.readline()
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert first.startswith("installed") or proc.returncode == -9
        n = _check_valid(root)
        assert n >= count                      # nothing installed is ever lost
        count = n
    # the next attempt succeeds and everything ends up installed exactly once
    done = subprocess.run([sys.executable, "-c", INSTALLER, *sources], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _check_valid(root) == len(sources)


def test_two_processes_at_once(tmp_path):
    a = [str(write_peft(tmp_path / "src" / f"a{i}", seed=100 + i)) for i in range(5)]
    b = [str(write_peft(tmp_path / "src" / f"b{i}", seed=200 + i)) for i in range(5)]
    shared = str(write_peft(tmp_path / "src" / "shared", seed=999))
    procs = [subprocess.Popen([sys.executable, "-c", INSTALLER, *srcs, shared], env=_env(tmp_path),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for srcs in (a, b)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    root = tmp_path / "data" / "library"
    assert _check_valid(root) == 11           # the shared adapter once, not twice
