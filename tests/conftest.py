"""Shared pytest set-up. Keep this file small: fixtures specific to one area live in tests/fixtures/."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

# Qt must see this before any Qt import; the desktop tests run headless.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tests never reach the real Hub.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
# An app the tests start (in this process or a child) logs into a folder of the run's, not the user's.
if "LORADECK_LOG_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile
    os.environ["LORADECK_LOG_DIR"] = tempfile.mkdtemp(prefix="loradeck-test-logs-")
    atexit.register(shutil.rmtree, os.environ["LORADECK_LOG_DIR"], ignore_errors=True)
    # … and keeps its single-instance socket there too (a private folder, as a session's runtime one is)
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="run-", dir=os.environ["LORADECK_LOG_DIR"])

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def llama_cpp_src() -> Path:
    """llama.cpp's sources from the llama-cpp-python sdist (fetched by `python3 dev.py test`)."""
    src = Path(os.environ.get("LORADECK_LLAMA_CPP_SRC", REPO / ".cache" / "llama.cpp"))
    if not (src / "convert_hf_to_gguf.py").exists():
        pytest.skip(f"llama.cpp sources not found at {src}; run the tests through `python3 dev.py test`")
    return src


@pytest.fixture(scope="session")
def vocab_gguf(llama_cpp_src) -> Path:
    """llama.cpp's 32k-token Llama test vocabulary (skips the test without it)."""
    path = llama_cpp_src / "models" / "ggml-vocab-llama-spm.gguf"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return path
