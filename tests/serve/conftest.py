"""A real `loradeck serve` (uvicorn + the llama.cpp engine + the demo model) on 127.0.0.1 with a free
port, in a background thread, and the official openai client pointed at it."""
from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("openai")

from serve_testlib import start_server  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _private_dirs(tmp_path_factory):
    """The library, presets and converted adapters go to temp folders, never the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LORADECK_DATA_DIR", str(tmp_path_factory.mktemp("loradeck-data")))
        mp.setenv("LORADECK_CACHE_DIR", str(tmp_path_factory.mktemp("loradeck-cache")))
        yield


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The demo model, a private (empty) library and presets file."""
    d = tmp_path_factory.mktemp("serve")
    s = start_server(library_root=d / "library", presets_path=d / "mix_presets.json")
    yield s
    s.server.stop()
    assert not s.server.running


@pytest.fixture(scope="module")
def client(served):
    with served.client() as c:
        yield c


