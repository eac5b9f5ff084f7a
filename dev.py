#!/usr/bin/env python3
"""Set LoRA Deck up in ./.venv and run it.

    python3 dev.py app      install (if needed) and launch the desktop app on the built-in demo
    python3 dev.py test     install (if needed, with the torch and test extras), lint (ruff) and run the
                            test suite; `python3 dev.py test ARGS...` passes ARGS to pytest, no lint
    python3 dev.py loradeck ARGS...   run the CLI inside the environment

Idempotent: a stamp file records what was installed from which pyproject.toml, so a second run
starts at once. llama-cpp-python compiles llama.cpp on its first install (minutes on 2 cores); pip
keeps the built wheel in its cache, so a fresh checkout on the same machine reinstalls it in seconds.
"""
from __future__ import annotations

import hashlib
import os
import signal
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


def _stamp(extras: str) -> Path:
    return VENV / f".loradeck-stamp-{extras.replace(',', '-') or 'base'}"


def _installed(extras: str) -> bool:
    stamp = _stamp(extras)
    return _bin("python").exists() and stamp.exists() and stamp.read_text() == _stamp_digest(extras)


def ensure_installed(extras: str) -> None:
    wanted = set(extras.split(",")) - {""}
    for have in set(EXTRAS.values()):   # an install with more extras serves too (`app` after `test`)
        if wanted <= set(have.split(",")) - {""} and _installed(have):
            return
    stamp, digest = _stamp(extras), _stamp_digest(extras)
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


LLAMA_CPP_VERSION = "0.3.36"   # keep equal to the llama-cpp-python pin in pyproject.toml
LLAMA_CPP_SRC = ROOT / ".cache" / "llama.cpp"


def ensure_llama_cpp_sources() -> Path:
    """llama.cpp's converters, gguf-py and vocab files, from llama-cpp-python's source distribution.

    The tests use them as references (convert_hf_to_gguf.py builds tiny GGUF bases, convert_lora_to_gguf.py
    is compared against). Downloaded once from the package registry, never executed by the product."""
    marker = LLAMA_CPP_SRC / ".complete"
    if marker.exists():
        return LLAMA_CPP_SRC
    import shutil
    import tarfile
    import tempfile
    with tempfile.TemporaryDirectory(dir=ROOT / ".cache" if (ROOT / ".cache").exists() else None) as tmp:
        print("dev.py: fetching llama.cpp sources (llama-cpp-python sdist) for the reference tests", flush=True)
        subprocess.run([str(_bin("python")), "-m", "pip", "download", "--disable-pip-version-check", "-q",
                        "--no-binary", ":all:", "--no-deps", f"llama-cpp-python=={LLAMA_CPP_VERSION}", "-d", tmp],
                       check=True)
        sdist = next(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        prefix = f"{sdist.name[:-len('.tar.gz')]}/vendor/llama.cpp/"
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith(prefix)]
            for m in members:
                m.name = m.name[len(prefix):]
            tar.extractall(Path(tmp) / "src", members=[m for m in members if m.name], filter="data")
        if LLAMA_CPP_SRC.exists():
            shutil.rmtree(LLAMA_CPP_SRC)
        LLAMA_CPP_SRC.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(Path(tmp) / "src"), LLAMA_CPP_SRC)
    marker.write_text(LLAMA_CPP_VERSION)
    return LLAMA_CPP_SRC


def compile_bytecode() -> None:
    """Byte-compile the project's own packages, as pip does for an installed (non-editable) package.

    An editable install imports straight from the checkout; where PYTHONDONTWRITEBYTECODE is set (or
    the checkout is read-only) every launch would compile ~30 modules again: ~25 ms of a ~150 ms
    start-up. Up-to-date files are skipped, so this costs ~30 ms when nothing changed."""
    subprocess.run([str(_bin("python")), "-m", "compileall", "-q", "adapters_backend", "desktop_app", "plugins"],
                   cwd=ROOT, check=False, stdout=subprocess.DEVNULL)


def lint() -> int:
    """ruff with the project's rules (pyproject.toml): a lint error fails the run as a test would."""
    done = subprocess.run([str(_bin("ruff")), "check", "--quiet", "."], cwd=ROOT, check=False)
    if done.returncode:
        print("dev.py: ruff found the problems above (`.venv/bin/ruff check --fix .` fixes some)", file=sys.stderr)
    return done.returncode


def hand_over(cmd: list[str], env: dict) -> int:
    """Run `cmd` in dev.py's place, so Ctrl+C and SIGTERM reach the app, the CLI or pytest directly.

    POSIX: exec (same process id, nothing left behind). Windows has no exec: run it as a child, let
    the console's Ctrl+C reach it (the child gets it too), pass SIGTERM/Ctrl+Break on, wait for it."""
    os.chdir(ROOT)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execve(cmd[0], cmd, env)
    child = subprocess.Popen(cmd, env=env)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGBREAK"):
        signal.signal(getattr(signal, name), lambda *_: child.terminate())
    return child.wait()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    what, rest = argv[0], argv[1:]
    ensure_installed(EXTRAS[what])
    compile_bytecode()
    env = dict(os.environ)
    if what == "test":
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
        if not env.get("LORADECK_LLAMA_CPP_SRC"):
            env["LORADECK_LLAMA_CPP_SRC"] = str(ensure_llama_cpp_sources())
        if not rest and lint():
            return 1
        cmd = [str(_bin("python")), "-m", "pytest", *rest]
    elif what == "app":
        cmd = [str(_bin("loradeck")), *rest]
    else:
        cmd = [str(_bin("loradeck")), *rest]
    return hand_over(cmd, env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
