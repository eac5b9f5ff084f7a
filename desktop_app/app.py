"""Start the desktop app: QApplication, error hooks, the main window. `loradeck` without arguments."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path


def create_app(argv: list[str] | None = None):
    argv = list(argv if argv is not None else sys.argv)
    from . import system_libraries
    # Before any Qt GUI library loads: name the missing system packages instead of Qt's abort.
    system_libraries.exit_unless_qt_can_start(argv)
    from PySide6.QtWidgets import QApplication

    from . import qt_fixes
    qt_fixes.apply()
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("LoRA Deck")
    app.setOrganizationName("LoRA Deck")
    app.setApplicationDisplayName("LoRA Deck")
    app.setDesktopFileName("loradeck")
    return app


def quit_on_signals(app) -> None:
    """Ctrl+C and SIGTERM close the windows and end the event loop, as closing the window does (the
    session is saved, engines stop). Qt's event loop runs no Python while idle, so a Python signal
    handler alone would wait for the next event: the signal also writes to a socket Qt watches."""
    import signal
    import socket

    from PySide6.QtCore import QSocketNotifier

    wake_read, wake_write = socket.socketpair()
    for end in (wake_read, wake_write):
        end.setblocking(False)
    signal.set_wakeup_fd(wake_write.fileno())
    notifier = QSocketNotifier(wake_read.fileno(), QSocketNotifier.Type.Read, app)
    notifier.activated.connect(lambda *_: wake_read.recv(512))   # Python runs: the handler below fires

    def close_all(*_):
        app.closeAllWindows()
        app.quit()

    signal.signal(signal.SIGINT, close_all)
    signal.signal(signal.SIGTERM, close_all)
    app._signal_wakeup = (wake_read, wake_write, notifier)     # kept alive with the app


def build_main_window(engine_factory=None):
    """AppState + MainWindow with the error reporter hooked in (shared by run() and the tests)."""
    from PySide6.QtWidgets import QApplication

    from . import qt_fixes, theme
    from .app_state import AppState
    from .errors import ErrorReporter
    from .settings import AppSettings
    from .widgets.main_window import MainWindow

    qt_fixes.apply()
    settings = AppSettings()
    if QApplication.instance() is not None and settings.theme != "system":
        theme.apply(QApplication.instance(), settings.theme)   # a chosen theme before the first widget is made
    # A data folder chosen in Settings applies from the next start; the environment variable wins.
    folder = settings.get("paths/data_dir", "")
    if folder and not os.environ.get("LORADECK_DATA_DIR"):
        os.environ["LORADECK_DATA_DIR"] = str(folder)
    errors = ErrorReporter()
    state = AppState(settings=settings, errors=errors, engine_factory=engine_factory)
    window = MainWindow(state)
    qt_fixes.collect_garbage_on_gui_thread(window)
    errors.set_parent_widget(window)
    return state, window


def run(argv: list[str] | None = None, files=()) -> int:
    """The app; `files` (adapter folders, .zip, .safetensors, .gguf) are handled as if dropped on the
    window once it is up (`loradeck FILE…`, a file manager's "Open with")."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("huggingface_hub").propagate = False      # it has its own handler: no double lines
    from .app_log import install_log_file
    install_log_file()
    app = create_app(argv)
    quit_on_signals(app)
    state, window = build_main_window()
    state.errors.install_hooks()
    window.show()
    window.start()
    if files:
        from PySide6.QtCore import QTimer
        QTimer.singleShot(0, lambda: window.drops.handle_paths([Path(f) for f in files]))
    return app.exec()


if __name__ == "__main__":
    sys.exit(run())
