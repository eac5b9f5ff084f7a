"""Fixtures for the desktop-app tests: an isolated data/cache/settings folder per test and a main
window built exactly as `loradeck` builds it (offscreen; tests/conftest.py sets QT_QPA_PLATFORM)."""
from __future__ import annotations

import gc
import importlib.util

import pytest


def _demo_available() -> bool:
    try:
        from adapters_backend import demo
        return demo.demo_model_path().exists()
    except Exception:  # noqa: BLE001
        return False


def _engine_available() -> bool:
    try:
        return importlib.util.find_spec("adapters_backend.engines.llama_cpp_engine") is not None
    except ModuleNotFoundError:          # the engines package itself is missing
        return False


@pytest.fixture(scope="package", autouse=True)
def _windows_deleted_after_gui_tests(qapp):
    """qtbot closes each test's windows with deleteLater, which waits for a later event loop; delete
    the last ones when this folder is done, so their garbage-collection hand-over to the GUI thread
    (desktop_app.qt_fixes) ends here and later tests collect as usual."""
    yield
    from PySide6.QtCore import QCoreApplication, QEvent
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert gc.isenabled()


@pytest.fixture
def demo_engine():
    """Skip unless the llama.cpp engine and the demo model are installed; returns (demo module, factory)."""
    if not _engine_available():
        pytest.skip("the llama.cpp engine (adapters_backend.engines) is not installed yet")
    if not _demo_available():
        pytest.skip("the demo model (adapters_backend/demo/assets) is not built yet")
    from adapters_backend import demo
    from desktop_app.workers import engine_host
    return demo, engine_host.default_engine_factory


@pytest.fixture
def app_env(tmp_path, monkeypatch):
    """Temp LORADECK_DATA_DIR / LORADECK_CACHE_DIR / settings folder; returns their root."""
    for name, sub in (("LORADECK_DATA_DIR", "data"), ("LORADECK_CACHE_DIR", "cache"),
                      ("LORADECK_SETTINGS_DIR", "settings")):
        (tmp_path / sub).mkdir()
        monkeypatch.setenv(name, str(tmp_path / sub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    return tmp_path


class AppHandle:
    """A running main window and its state; `close()` shuts it down like the user quitting."""

    def __init__(self, qtbot):
        from desktop_app.app import build_main_window

        self.state, self.window = build_main_window()
        self.state.errors.show_dialogs = False
        qtbot.addWidget(self.window)
        self.qtbot = qtbot
        self.closed = False

    def start(self, wait_model: bool = True, timeout: int = 30000):
        self.window.show()
        self.window.start()
        if wait_model:
            self.qtbot.waitUntil(lambda: self.state.model is not None or bool(self.state.errors.history),
                                 timeout=timeout)
            assert self.state.model is not None, self.state.errors.history
        return self

    def close(self):
        if not self.closed:
            self.window.close()
            self.closed = True


@pytest.fixture
def make_app(qtbot, app_env):
    """Factory: `make_app()` opens a main window on the temp folders (call again to "restart")."""
    handles = []

    def factory() -> AppHandle:
        h = AppHandle(qtbot)
        handles.append(h)
        return h

    yield factory
    for h in handles:
        h.close()


@pytest.fixture
def direct_reply(demo_engine):
    """reply(settings, model_path, mix, messages, params) -> text: the engine run directly (no GUI, no
    thread) with the same model, mix, messages and sampling — what the GUI must show."""
    from adapters_backend.engines.base import ChatMessage, SamplingParams
    from adapters_backend.jobs import JobContext

    _demo, factory = demo_engine

    def reply(settings, model_path, mix, messages, params) -> str:
        engine = factory("llama.cpp", settings.engine_options())
        try:
            engine.load(model_path, JobContext())
            engine.set_adapters(list(mix))
            chunks = engine.generate([ChatMessage(role=r, content=c) for r, c in messages],
                                     SamplingParams(**params), JobContext())
            return "".join(getattr(c, "text", "") for c in chunks)
        finally:
            engine.close()

    return reply
