"""The window as a desktop app: light start-up, minimum size, remembered geometry, shortcuts,
accessible names, settings that stick, errors that become dialogs instead of crashes."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from PySide6.QtCore import QByteArray
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QWidget,
)

from desktop_app.widgets.main_window import MIN_SIZE

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]


def test_startup_imports_no_engine(app_env):
    """Building and painting the window imports neither torch nor llama_cpp (nor the Hub client)."""
    code = textwrap.dedent("""
        import json, sys
        from desktop_app.app import build_main_window, create_app
        app = create_app([])
        state, w = build_main_window()
        w.show()
        app.processEvents()
        heavy = [m for m in ("torch", "llama_cpp", "transformers", "huggingface_hub", "numpy", "gguf")
                 if m in sys.modules]
        print(json.dumps(heavy))
        w.close()
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_minimum_size_geometry_and_tab_remembered(make_app, qtbot):
    app = make_app()
    w = app.window
    w.show()
    assert (w.minimumWidth(), w.minimumHeight()) == MIN_SIZE
    w.resize(780, 650)                      # within the 800×800 offscreen screen, so nothing is clamped
    w.show_view("library")
    qtbot.waitUntil(lambda: w.size().width() == 780, timeout=5000)
    app.close()
    saved = app.state.settings.get("window/geometry")
    assert isinstance(saved, QByteArray) and not saved.isEmpty()

    again = make_app()
    again.window.show()
    assert (again.window.size().width(), again.window.size().height()) == (780, 650)
    assert again.window.tabs.currentWidget() is again.window._lazy["library"]


def test_shortcuts_exist(make_app):
    w = make_app().window
    shortcuts = {a.text().replace("&", ""): a.shortcut().toString() for a in w.findChildren(type(w.stop_action))}
    for name, keys in {"New chat": "Ctrl+N", "Regenerate": "Ctrl+R", "Stop": "Esc", "Open GGUF model…": "Ctrl+O",
                       "Install adapter…": "Ctrl+I", "Chat": "Ctrl+1", "Library": "Ctrl+4", "Hub": "Ctrl+5",
                       "Quit": "Ctrl+Q", "Settings…": "Ctrl+,"}.items():
        assert shortcuts.get(name) == keys, (name, shortcuts.get(name))


def test_every_control_has_an_accessible_name(make_app, qtbot):
    app = make_app()
    w = app.window
    w.show()
    for name in ("compare", "sweep", "library", "hub"):
        w.show_view(name)
    kinds = (QAbstractButton, QAbstractSlider, QAbstractSpinBox, QComboBox, QLineEdit, QPlainTextEdit)
    unnamed = []
    for widget in w.findChildren(QWidget):
        if isinstance(widget, kinds) and widget.isVisibleTo(w):
            label = widget.accessibleName() or (widget.text() if isinstance(widget, QAbstractButton) else "")
            if not label.strip():
                unnamed.append(f"{type(widget).__name__} in {type(widget.parent()).__name__}")
    assert not unnamed, unnamed


def test_settings_dialog_saves(make_app, qtbot):
    app = make_app()
    w = app.window
    w.show()
    w.show_settings()
    dlg = w.settings_dialog
    assert dlg.gpu_layers.value() == -1 and dlg.gpu_layers.text() == "automatic"    # the default
    dlg.threads.setValue(3)
    dlg.n_ctx.setValue(4096)
    dlg.sampling.temperature.setValue(0.3)
    dlg.accept()
    s = app.state.settings
    assert s.n_threads == 3 and s.n_ctx == 4096
    assert s.engine_options()["n_threads"] == 3 and s.engine_options()["n_gpu_layers"] == -1
    assert s.default_sampling()["temperature"] == pytest.approx(0.3)


def test_closed_dialogs_are_gone_and_leave_nothing_listening(make_app, qtbot):
    """Dialogs and message boxes are made anew at each opening: a closed one must not stay behind as a
    hidden child of the window (each opening of Settings kept one, updating its label on every change
    of the snapshot store; every message box stayed), nor fail when a job it started ends after it closed."""
    from PySide6.QtCore import QCoreApplication, QEvent
    from PySide6.QtWidgets import QDialog

    from desktop_app.widgets.adapter_mixer import warn_cannot_add

    app = make_app()
    w = app.window
    w.show()

    def cannot_add():
        warn_cannot_add(w.mixer, app.state, "no-such-adapter")
    for opener in (w.show_settings, w.show_plugins, w.show_convert, w.show_merge, w._about, cannot_add):
        for _ in range(3):
            opener()
            dialogs = [d for d in w.findChildren(QDialog) if d.isVisible()]
            assert len(dialogs) == 1
            dialogs[0].reject()                  # the plugins discovery may still run: its end finds no dialog
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        assert w.findChildren(QDialog) == [], opener.__name__
    app.state.kv_stats_changed.emit()           # what a closed Settings was connected to
    qtbot.waitUntil(lambda: app.state.jobs.active() == 0, timeout=30000)   # the discoveries end after their dialogs


def test_job_errors_become_dialog_messages_not_crashes(make_app, qtbot):
    app = make_app()

    def broken(ctx):
        raise ZeroDivisionError("boom")

    job = app.state.jobs.start(broken)
    job.signals.error.connect(lambda exc: app.state.errors.report(exc, "Testing"))
    qtbot.waitUntil(lambda: bool(app.state.errors.history), timeout=10000)
    context, message = app.state.errors.history[-1]
    assert context == "Testing" and "ZeroDivisionError" in message


def test_a_data_folder_that_cannot_be_used_is_refused_when_chosen(make_app, qtbot, tmp_path):
    """Not found at the next start: Settings says why and stays open; a usable one is made at once."""
    app = make_app()
    w = app.window
    w.show()
    w.show_settings()
    dlg = w.settings_dialog
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    dlg.data_folder.setText(str(in_the_way / "loradeck"))
    dlg.accept()
    assert dlg.isVisible() and dlg.data_folder_error.isVisibleTo(dlg)
    assert "cannot be used: a file is in the way of its folder" in dlg.data_folder_error.text()
    assert app.state.settings.get("paths/data_dir", "") == ""
    good = tmp_path / "new" / "loradeck-data"
    dlg.data_folder.setText(str(good))
    dlg.accept()
    assert not dlg.isVisible() and good.is_dir() and list(good.iterdir()) == []
    assert app.state.settings.get("paths/data_dir", "") == str(good)
