"""Regenerate the screenshots in this folder: the main states of the desktop app on the demo model.

    xvfb-run -a -s "-screen 0 1440x900x24" env QT_QPA_PLATFORM=xcb .venv/bin/python docs/screenshots/make_screenshots.py

Runs on temporary data folders (your library and conversations are not touched). States whose
backend is not installed are skipped with a note.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent
REPO = OUT.parents[1]
SIZE = (1360, 860)


def wait_until(cond, timeout=120.0):
    from PySide6.QtCore import QEventLoop, QTimer
    loop, end = QEventLoop(), time.monotonic() + timeout
    poll = QTimer()
    poll.setInterval(20)
    poll.timeout.connect(lambda: loop.quit() if cond() or time.monotonic() > end else None)
    poll.start()
    if not cond():
        loop.exec()
    poll.stop()
    if not cond():
        raise TimeoutError("state not reached")


def settle(ms: int = 300):
    from PySide6.QtCore import QEventLoop, QTimer
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def save(widget, name: str):
    settle()
    widget.grab().save(str(OUT / f"{name}.png"))
    print("saved", name)


def ask(window, text: str):
    chat = window.chat
    chat.prompt.setPlainText(text)
    chat.send()
    wait_until(lambda: not chat.generating)


def dark_palette():
    from PySide6.QtGui import QColor, QPalette
    p = QPalette()
    roles = {"Window": "#2b2b2b", "WindowText": "#e6e6e6", "Base": "#1e1e1e", "AlternateBase": "#333333",
             "ToolTipBase": "#3a3a2a", "ToolTipText": "#f0f0d0", "Text": "#e6e6e6", "Button": "#353535",
             "ButtonText": "#e6e6e6", "Highlight": "#2a82da", "HighlightedText": "#ffffff",
             "PlaceholderText": "#9a9a9a", "Mid": "#555555", "Light": "#505050", "Dark": "#202020"}
    for name, colour in roles.items():
        p.setColor(getattr(QPalette.ColorRole, name), QColor(colour))
    for name in ("Text", "ButtonText", "WindowText"):
        p.setColor(QPalette.ColorGroup.Disabled, getattr(QPalette.ColorRole, name), QColor("#777777"))
    return p


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="loradeck-shots-")
    for name in ("LORADECK_DATA_DIR", "LORADECK_CACHE_DIR", "LORADECK_SETTINGS_DIR"):
        os.environ[name] = str(Path(tmp) / name.lower())
    dark = "--dark" in sys.argv
    from desktop_app.app import build_main_window, create_app
    app = create_app(sys.argv[:1])
    if dark:
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
    state, w = build_main_window()
    state.errors.show_dialogs = False
    w.resize(*SIZE)
    w.show()
    w.start()
    wait_until(lambda: state.model is not None or bool(state.errors.history))
    if state.model is None:
        print("the demo model did not load:", state.errors.history)
        return 1
    wait_until(lambda: len(w.mixer.rows) > 0, 60)
    w.chat.sampling.temperature.setValue(0.0)
    if dark:
        ask(w, "What is the capital of France?")
        w.mixer.rows[0].switch.setChecked(True)
        w.mixer.rows[0].spin.setValue(0.8)
        ask(w, "What is the capital of France?")
        save(w, "chat-dark")
        w.close()
        return 0

    save(w, "first-run")
    ask(w, "What is the capital of France?")
    w.mixer.rows[1].switch.setChecked(True)                 # pirate
    w.mixer.rows[1].spin.setValue(0.8)
    ask(w, "What is the capital of France?")
    w.mixer.rows[0].switch.setChecked(True)                 # + shout
    w.mixer.rows[0].spin.setValue(0.6)
    ask(w, "Tell me a joke.")
    save(w, "chat-mix")

    compare = w.show_view("compare")
    compare.prompt.setPlainText("What does a cow say?")
    compare.sampling.temperature.setValue(0.0)
    compare.run()
    wait_until(lambda: not compare.collector.running)
    save(w, "compare")

    sweep = w.show_view("sweep")
    wait_until(lambda: sweep.run_button.isEnabled(), 30)
    sweep.prompt.setPlainText("What is the capital of France?")
    sweep.adapter_x.setCurrentIndex(max(0, sweep.adapter_x.findText("reverse")))
    sweep.strengths_x.setText("0, 0.25, 0.5, 0.75, 1, 1.25")
    sweep.sampling.temperature.setValue(0.0)
    sweep.run()
    wait_until(lambda: not sweep.collector.running)
    save(w, "sweep")

    library = w.show_view("library")
    library.table.selectRow(0)
    library.detail_tabs.setCurrentIndex(0)
    wait_until(lambda: library.anatomy.anatomy is not None or "Cannot" in library.anatomy.message, 60)
    save(w, "library-anatomy")

    w.show_view("hub")
    save(w, "hub")

    w.show_plugins()
    wait_until(lambda: bool(w.plugins_dialog.rows), 30)
    save(w.plugins_dialog, "plugins")
    w.plugins_dialog.close()
    w.show_settings()
    save(w.settings_dialog, "settings")
    w.settings_dialog.close()
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
