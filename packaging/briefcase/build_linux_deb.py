"""Build LoRA Deck's Debian package with briefcase, offline, and smoke-test it.

    python3 packaging/briefcase/build_linux_deb.py [--briefcase PATH] [--stage DIR] [--skip-build]

Steps (each prints what it runs):
 1. stage: copy the project's files (git's tracked and untracked-but-not-ignored files) into a
    staging folder, so briefcase's build/ and .briefcase/ never land in the checkout; add
    packaging/briefcase/CHANGELOG.md as CHANGELOG.md when the project has none at its root
    (briefcase's Linux build refuses to run without a changelog there);
 2. `briefcase create linux system --no-input`  (the project's template: no network for that;
    the requirements come from PyPI, or pip's cache / PIP_FIND_LINKS when offline),
    `briefcase build linux system --no-input`, byte-compile the bundle (briefcase ships sources
    only), `briefcase package linux system --no-input`;
 3. smoke_test_deb.py on the package: the launcher linked to the system libpython with no RUNPATH,
    installed by dpkg, started from its desktop entry in a desktop-like session on Xvfb until its main
    window is on the screen, its command line, removal (see that script).

briefcase must run on the system Python (/usr/bin/python3), e.g. from a venv made with
`/usr/bin/python3 -m venv /tmp/briefcase-venv && /tmp/briefcase-venv/bin/pip install briefcase`;
docs/packaging.md lists what else a build machine needs.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import smoke_test_deb  # noqa: I001 - this script's own folder

REPO = Path(__file__).resolve().parents[2]


def run(cmd, **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def stage(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, check=True, capture_output=True).stdout.decode().split("\0")
    if dest.exists():
        # Keep briefcase's build/ and .briefcase/ caches; replace the sources.
        for child in dest.iterdir():
            if child.name not in ("build", ".briefcase"):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    skip = ("tests/", "bench/", "docs/screenshots/")
    copied = 0
    for rel in filter(None, files):
        src = REPO / rel
        if rel.startswith(skip) or not src.is_file():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
        copied += 1
    if not any((dest / n).exists() for n in ("CHANGELOG.md", "CHANGELOG", "NEWS.md", "HISTORY.md")):
        shutil.copy2(REPO / "packaging/briefcase/CHANGELOG.md", dest / "CHANGELOG.md")
    print(f"staged {copied} files in {dest}")
    return dest


def compile_bundle(where: Path, briefcase: str) -> None:
    """Byte-compile the bundle's Python files with the interpreter it will run on (the system Python,
    which briefcase itself runs on). Briefcase ships sources only, and /usr/lib is not writable by
    users, so without this every launch would compile every module again."""
    lib = next((where / "build" / "loradeck").glob("*/*/loradeck-*/usr/lib/loradeck"))
    python = Path(briefcase).with_name("python3")
    cmd = [str(python if python.exists() else "/usr/bin/python3"), "-m", "compileall", "-q", "-j", "0", str(lib)]
    print("+", " ".join(cmd), flush=True)
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    # Some packages ship templates named *.py (PySide6's deploy recipes); pip skips those too.
    skipped = [ln.split("'")[1] for ln in out.splitlines() if ln.startswith("*** Error compiling")]
    print(f"byte-compiled {lib}; {len(skipped)} file(s) that are not Python left as they are")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--briefcase", default=shutil.which("briefcase") or "/tmp/briefcase-venv/bin/briefcase")
    ap.add_argument("--stage", type=Path, default=Path(tempfile.gettempdir()) / "loradeck-briefcase-stage")
    ap.add_argument("--skip-build", action="store_true", help="only smoke-test the .deb already in the stage")
    args = ap.parse_args()
    where = stage(args.stage) if not args.skip_build else args.stage
    if not args.skip_build:
        bc = args.briefcase
        if (where / "build" / "loradeck").exists():
            shutil.rmtree(where / "build" / "loradeck")
        run([bc, "create", "linux", "system", "--no-input"], cwd=where)
        run([bc, "build", "linux", "system", "--no-input"], cwd=where)
        compile_bundle(where, bc)
        run([bc, "package", "linux", "system", "--no-input", "--adhoc-sign"], cwd=where)
    debs = sorted((where / "dist").glob("loradeck_*.deb"))
    if not debs:
        print("no .deb in", where / "dist", file=sys.stderr)
        return 1
    print(f"package: {debs[-1]} ({debs[-1].stat().st_size / 1e6:.1f} MB)")
    return smoke_test_deb.main([str(debs[-1])])


if __name__ == "__main__":
    sys.exit(main())
