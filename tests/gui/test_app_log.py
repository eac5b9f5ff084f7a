"""The app's log file (desktop_app/app_log.py): LoRA Deck's own messages from INFO, others' from WARNING,
tracebacks kept, control characters escaped, three files of 1 MB at most; Help → Open log folder shows it."""
from __future__ import annotations

import logging
import os

import pytest
from fixtures.recording_program import recording_program

from desktop_app import app_log


@pytest.fixture
def log_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_LOG_DIR", str(tmp_path / "logs"))
    root = logging.getLogger()
    level, console = root.level, logging.StreamHandler()
    root.addHandler(console)
    handler = app_log.install_log_file()
    assert handler is not None
    yield app_log.log_file(), console
    root.removeHandler(handler)
    root.removeHandler(console)
    handler.close()
    root.setLevel(level)


def test_what_goes_into_the_log(log_file):
    path, console = log_file
    logging.getLogger("adapters_backend.engines.fused_builder").info("fused the mix of 3 adapters")
    logging.getLogger("llama_cpp").info("llama_context: n_ctx_per_seq (4096) > n_ctx_train (512)")  # its warnings
    logging.getLogger("httpx").info("HTTP Request: GET https://huggingface.co/api/models")   # noise: left out
    logging.getLogger("urllib3").warning("a warning from a library")                      # kept
    logging.getLogger("desktop_app.errors").warning("adapter evil\x1b]52;c;cHduZWQ=\x07 refused")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("desktop_app.errors").exception("Unexpected error")
    text = path.read_text(encoding="utf-8")
    assert "fused the mix of 3 adapters" in text and "a warning from a library" in text
    assert "n_ctx_train (512)" in text and "HTTP Request" not in text
    assert "evil\\u001b]52;c;cHduZWQ=\\u0007 refused" in text and "\x1b" not in text and "\x07" not in text
    assert "Traceback (most recent call last):" in text and "ValueError: boom" in text
    assert console.level == logging.WARNING                                 # the terminal stays quiet


def test_the_log_stays_small(log_file):
    path, _console = log_file
    line = "x" * 1000
    for _ in range(5000):                                                    # 5 MB of messages
        logging.getLogger("desktop_app.test").info(line)
    files = sorted(path.parent.iterdir())
    assert [f.name for f in files] == ["loradeck.log", "loradeck.log.1", "loradeck.log.2"]
    assert all(f.stat().st_size <= app_log.MAX_BYTES for f in files)


def test_an_unusable_log_folder_costs_only_the_log(tmp_path, monkeypatch):
    taken = tmp_path / "logs"
    taken.write_text("a file where the log folder should be")
    monkeypatch.setenv("LORADECK_LOG_DIR", str(taken))
    handlers = list(logging.getLogger().handlers)
    assert app_log.install_log_file() is None
    assert logging.getLogger().handlers == handlers


@pytest.mark.skipif(os.name == "nt", reason="xdg-open is the Linux/BSD opener")
def test_help_opens_the_log_folder(make_app, qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_LOG_DIR", str(tmp_path / "logs"))
    bin_dir = tmp_path / "bin"
    opened = recording_program(bin_dir, "xdg-open")
    monkeypatch.setenv("PATH", str(bin_dir))
    app = make_app().start(wait_model=False)
    action = next(a for a in app.window.menuBar().actions() if a.text() == "&Help").menu().actions()[1]
    assert action.text() == "Open &log folder"
    action.trigger()
    qtbot.waitUntil(lambda: app.window._log_folder_job.done, timeout=30000)
    assert opened.read_text().split() == [str(tmp_path / "logs")]
