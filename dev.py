#!/usr/bin/env python3
"""Set LoRA Deck up in ./.venv and run it.

    python3 dev.py app      install (if needed) and launch the desktop app on the built-in demo
    python3 dev.py test     install (if needed, with the torch and test extras) and run the test suite
    python3 dev.py loradeck ARGS...   run the CLI inside the environment

Idempotent: a stamp file records what was installed from which pyproject.toml, so a second run
starts at once. llama-cpp-python compiles llama.cpp on its first install (minutes on 2 cores); pip
keeps the built wheel in its cache, so a fresh checkout on the same machine reinstalls it in seconds.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("LORADECK_VENV", ROOT / ".venv"))
CONSTRAINTS = ROOT / "packaging" / "constraints-dev.txt"

EXTRAS = {"app": "", "loradeck": "", "test": "torch,test"}


def _bin(name: str) -> Path:
    sub = "Scripts" if os.name == "nt" else "bin"
    suffix = ".exe" if os.name == "nt" else ""
    return VENV / sub / f"{name}{suffix}"


def _stamp_digest(extras: str) -> str:
    h = hashlib.sha256()
    for f in (ROOT / "pyproject.toml", CONSTRAINTS):
        h.update(f.read_bytes())
    h.update(extras.encode())
    h.update(os.environ.get("LORADECK_OWN_TORCH", "").encode())
    return h.hexdigest()


def ensure_installed(extras: str) -> None:
    stamp = VENV / f".loradeck-stamp-{extras.replace(',', '-') or 'base'}"
    digest = _stamp_digest(extras)
    if stamp.exists() and stamp.read_text() == digest and _bin("python").exists():
        return
    if not _bin("python").exists():
        print(f"dev.py: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    target = f".[{extras}]" if extras else "."
    cmd = [str(_bin("python")), "-m", "pip", "install", "--disable-pip-version-check", "-e", target]
    if not os.environ.get("LORADECK_OWN_TORCH"):
        cmd += ["-c", str(CONSTRAINTS)]
    print("dev.py: " + " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    stamp.write_text(digest)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    what, rest = argv[0], argv[1:]
    ensure_installed(EXTRAS[what])
    env = dict(os.environ)
    if what == "test":
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        cmd = [str(_bin("python")), "-m", "pytest", *rest]
    elif what == "app":
        cmd = [str(_bin("loradeck")), *rest]
    else:
        cmd = [str(_bin("loradeck")), *rest]
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
