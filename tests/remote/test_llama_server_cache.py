"""The llama-server the remote tests use is built once per llama-cpp-python version into the user's
cache (tests/fixtures/llama_server_bin.py), and a cached build is reused only while it still matches:
same version, same build options, files unchanged, and it runs. Each test works on a copy of the
real cached build in a temporary cache folder."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from fixtures import llama_server_bin as lsb

pytestmark = pytest.mark.timeout(2400)        # may build the server first (~2 minutes on 2 cores)


@pytest.fixture(scope="module")
def built_entry():
    """The cache folder of the server the remote tests use (built now if it is not there yet)."""
    if os.environ.get("LORADECK_LLAMA_SERVER_BIN"):
        pytest.skip("LORADECK_LLAMA_SERVER_BIN replaces the cached build")
    try:
        binary = lsb.find_or_build(os.environ.get("LORADECK_BUILD_LLAMA_SERVER", "1") != "0")
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"llama-server could not be built: {exc}")
    if binary is None:
        pytest.skip("llama-server is not built (LORADECK_BUILD_LLAMA_SERVER=0)")
    return binary.parents[1]


@pytest.fixture
def cache(built_entry, tmp_path, monkeypatch):
    """(cache root, entry): a copy of the real build in a cache folder of its own."""
    monkeypatch.delenv("LORADECK_LLAMA_SERVER_BIN", raising=False)
    root = tmp_path / "cache"
    entry = lsb.cache_dir(root, lsb.llama_cpp_version())
    shutil.copytree(built_entry, entry, symlinks=True)
    return root, entry


def _edit_stamp(entry, **changes) -> None:
    path = entry / "stamp.json"
    stamp = json.loads(path.read_text())
    stamp.update(changes)
    path.write_text(json.dumps(stamp))


def test_a_matching_build_is_reused(cache):
    root, entry = cache
    assert lsb.check(entry, lsb.llama_cpp_version()) is None
    assert lsb.find(root) == entry / "bin" / lsb.EXE


def test_a_build_for_another_version_is_not_reused(cache):
    root, entry = cache
    _edit_stamp(entry, llama_cpp_python="0.3.0")
    assert "built for llama-cpp-python 0.3.0" in lsb.check(entry, lsb.llama_cpp_version())
    assert lsb.find(root) is None


def test_a_build_with_other_options_is_not_reused(cache):
    root, entry = cache
    stamp = json.loads((entry / "stamp.json").read_text())
    _edit_stamp(entry, options=[*stamp["options"], "-DGGML_CUDA=ON"])
    assert "other options" in lsb.check(entry, lsb.llama_cpp_version())
    assert lsb.find(root) is None


@pytest.mark.parametrize("damaged", ["bin", "lib"])
def test_a_changed_file_is_not_reused(cache, damaged):
    root, entry = cache
    files = sorted(p for p in (entry / damaged).glob("*") if p.is_file())
    if not files:
        pytest.skip(f"this build has no {damaged}/ files")
    with open(files[0], "r+b") as f:
        f.seek(4096)
        byte = f.read(1)
        f.seek(4096)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert "changed since it was built" in lsb.check(entry, lsb.llama_cpp_version())
    assert lsb.find(root) is None


@pytest.mark.skipif(os.name != "posix", reason="replaces the binary by a shell script")
def test_a_binary_that_does_not_run_is_not_reused(cache):
    """Files and stamp agree, but the server cannot start (as when a library it needs is gone)."""
    root, entry = cache
    binary = entry / "bin" / lsb.EXE
    binary.write_text("#!/bin/sh\necho 'error while loading shared libraries' >&2\nexit 127\n")
    stamp = json.loads((entry / "stamp.json").read_text())
    stamp["files"][f"bin/{lsb.EXE}"] = lsb._sha256(binary)
    (entry / "stamp.json").write_text(json.dumps(stamp))
    assert "--version` failed (exit 127)" in lsb.check(entry, lsb.llama_cpp_version())
    assert lsb.find(root) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the server-only build is Linux's")
def test_only_the_server_is_compiled_against_llama_cpp_pythons_libraries(built_entry):
    stamp = json.loads((built_entry / "stamp.json").read_text())
    assert stamp["method"] == "server-only", stamp
    copied = {p.name for p in (built_entry / "lib").iterdir()}
    assert {"libllama.so.0", "libggml.so.0", "libggml-base.so.0", "libmtmd.so.0"} <= copied
    dynamic = subprocess.run(["readelf", "-d", built_entry / "bin" / lsb.EXE], capture_output=True, text=True,
                             check=True).stdout
    assert "[libllama.so.0]" in dynamic and "[$ORIGIN/../lib]" in dynamic, dynamic
    version = subprocess.run([built_entry / "bin" / lsb.EXE, "--version"], capture_output=True, text=True)
    assert f"commit {lsb.build_commit(lsb.llama_cpp_version())}" in version.stdout + version.stderr
