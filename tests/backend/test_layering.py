"""Architecture contracts (pyproject.toml): the backend and the plugins never import Qt or the desktop app;
the desktop app uses only the backend's public modules; plugins import LoRA Deck only through plugins.api."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_import_linter_contract_holds():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is part of the test extra"
    out = subprocess.run([exe, str(REPO / "pyproject.toml"), "--no-cache"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Contracts: 3 kept, 0 broken" in out.stdout


def test_contract_catches_a_violation(tmp_path):
    """The contract can fail: a backend module importing PySide6 breaks it."""
    pkg = tmp_path / "adapters_backend_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from PySide6 import QtCore\n")
    cfg = tmp_path / "importlinter.ini"
    cfg.write_text("[importlinter]\nroot_package = adapters_backend_probe\ninclude_external_packages = True\n\n"
                   "[importlinter:contract:no-qt]\nname = no Qt\ntype = forbidden\n"
                   "source_modules = adapters_backend_probe\nforbidden_modules = PySide6\n")
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    out = subprocess.run([exe, str(cfg), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0 and "broken" in out.stdout.lower(), out.stdout + out.stderr
