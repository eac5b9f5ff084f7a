"""The pickle converter's child process imports nothing from the adapter's folder, the working folder
or PYTHONPATH: a `torch.py` lying beside `adapter_model.bin` never runs (`loradeck inspect .` inside
that folder, and a library install from there). The desktop app's drop is in tests/gui."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.pickle_traps import booby_trapped_pickle_adapter

from adapters_backend.library import Library


@pytest.fixture
def trap(tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LORADECK_DATA_DIR", str(tmp_path / "data"))
    markers = tmp_path / "markers"
    return booby_trapped_pickle_adapter(tmp_path / "downloaded", markers), markers


def test_cli_inspect_dot_inside_the_folder_runs_nothing_from_it(trap):
    folder, markers = trap
    loradeck = Path(sys.executable).parent / "loradeck"
    out = subprocess.run([str(loradeck), "inspect", ".", "--json"], cwd=folder, capture_output=True, text=True,
                         timeout=300, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["format"] == "peft" and report["module_count"] == 1
    assert any("weights-only loader" in w for w in report["warnings"])
    assert not list(markers.iterdir())


def test_library_install_from_inside_the_folder_with_pythonpath_runs_nothing_from_it(trap, monkeypatch):
    folder, markers = trap
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([".", str(folder)]))
    monkeypatch.setenv("PYTHONSTARTUP", str(folder / "torch.py"))
    entry = Library().install(".")
    assert entry.format == "peft" and entry.rank == 2
    assert not list(markers.iterdir())


def test_the_child_is_isolated(tmp_path, monkeypatch):
    """What the converter's child sees, run from the adapter's folder with that folder on the parent's
    sys.path and PYTHONPATH: isolated mode, none of the PYTHON* variables, the folder nowhere on sys.path
    (nor anything inside it), the parent's other folders kept."""
    from adapters_backend.isolated import isolated_env, isolated_python

    inner = tmp_path / "inner"
    inner.mkdir()
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(inner))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend("")
    probe = ("import os, sys, json; print(json.dumps([sys.flags.isolated, sys.path, "
             "sorted(k for k in os.environ if k.startswith('PYTHON'))]))")
    out = subprocess.run(isolated_python(probe, untrusted=(tmp_path,)), cwd=tmp_path, env=isolated_env(),
                         capture_output=True, text=True, timeout=60)
    isolated, path, python_vars = json.loads(out.stdout)
    assert isolated == 1 and python_vars == []
    assert not [p for p in path if p in ("", ".") or p.startswith(str(tmp_path))], path
    assert os.path.dirname(os.path.dirname(json.__file__)) in path      # the parent's stdlib, site-packages…
