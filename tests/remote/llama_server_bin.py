"""Find or build llama.cpp's `llama-server` from the sources vendored in llama-cpp-python's sdist.

The build lives in `.cache/llama-server/build` and is reused while the sources stay the same (a
stamp file records the sources' commit). `LORADECK_LLAMA_SERVER_BIN` points at another binary.

    python tests/remote/llama_server_bin.py      # build it now (several minutes on 2 cores)
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "llama-server"
BUILD = CACHE / "build"
BIN = BUILD / "bin" / ("llama-server.exe" if os.name == "nt" else "llama-server")
CMAKE_ARGS = ["-DLLAMA_BUILD_SERVER=ON", "-DGGML_NATIVE=ON", "-DLLAMA_CURL=OFF", "-DBUILD_SHARED_LIBS=OFF",
              "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF"]


def sources() -> Path:
    return Path(os.environ.get("LORADECK_LLAMA_CPP_SRC", REPO / ".cache" / "llama.cpp"))


def find() -> Path | None:
    """The binary if it is there (no build)."""
    override = os.environ.get("LORADECK_LLAMA_SERVER_BIN")
    if override:
        return Path(override) if Path(override).is_file() else None
    return BIN if BIN.is_file() else None


def build(log=sys.stderr) -> Path:
    """Configure and build the `llama-server` target (incremental if a build tree exists)."""
    src = sources()
    if not (src / "tools" / "server").is_dir():
        raise FileNotFoundError(f"llama.cpp sources not found at {src} (run `python3 dev.py test` to fetch them)")
    if shutil.which("cmake") is None:
        raise FileNotFoundError("cmake is not installed")
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(CACHE / "build.log", "a", encoding="utf-8") as out:
        subprocess.run(["cmake", "-S", str(src), "-B", str(BUILD), *CMAKE_ARGS], check=True, stdout=out,
                       stderr=subprocess.STDOUT)
        subprocess.run(["cmake", "--build", str(BUILD), "--target", "llama-server", "-j", str(os.cpu_count() or 2)],
                       check=True, stdout=out, stderr=subprocess.STDOUT)
    print(f"llama-server built in {time.monotonic() - t0:.0f} s: {BIN}", file=log)
    return BIN


def find_or_build(allow_build: bool) -> Path | None:
    found = find()
    if found is not None or not allow_build:
        return found
    return build()


if __name__ == "__main__":
    print(find() or build())
