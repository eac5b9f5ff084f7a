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
        app.setProperty("loradeck_ending", True)     # no question asked: the system is ending us
        app.closeAllWindows()
        app.quit()

    signal.signal(signal.SIGINT, close_all)
    signal.signal(signal.SIGTERM, close_all)
    app._signal_wakeup = (wake_read, wake_write, notifier)     # kept alive with the app


def use_chosen_data_folder(settings) -> str | None:
    """A data folder chosen in Settings applies from the next start; the environment variable wins.
    One that cannot be used (a drive not plugged in, no permission) is set aside for this start, so
    the app opens on the usual folder instead of not at all; returns why, to be shown in the window."""
    from adapters_backend.disk_space import WriteFailed
    from adapters_backend.paths import data_dir
    folder = settings.get("paths/data_dir", "")
    if folder and not os.environ.get("LORADECK_DATA_DIR"):
        os.environ["LORADECK_DATA_DIR"] = str(folder)
    try:
        data_dir()
        return None
    except WriteFailed as exc:
        if os.environ.pop("LORADECK_DATA_DIR", None) is None:
            raise                                    # the usual folder itself: nothing to fall back on
        return (f"The data folder cannot be used ({exc}). LoRA Deck opened on its usual data folder, "
                f"{data_dir()}, instead: the library and conversations there are shown until that folder "
                "can be used again (or another is chosen in Settings).")


def build_main_window(engine_factory=None, settings=None):
    """AppState + MainWindow with the error reporter hooked in (shared by run() and the tests)."""
    from PySide6.QtWidgets import QApplication

    from . import qt_fixes, theme
    from .app_state import AppState
    from .errors import ErrorReporter
    from .settings import AppSettings
    from .widgets.main_window import MainWindow

    qt_fixes.apply()
    settings = settings or AppSettings()
    if QApplication.instance() is not None and settings.theme != "system":
        theme.apply(QApplication.instance(), settings.theme)   # a chosen theme before the first widget is made
    use_chosen_data_folder(settings)
    errors = ErrorReporter()
    state = AppState(settings=settings, errors=errors, engine_factory=engine_factory)
    window = MainWindow(state)
    qt_fixes.collect_garbage_on_gui_thread(window)
    errors.set_parent_widget(window)
    return state, window


def open_files_on_macos(app, window) -> None:
    """macOS hands a double-clicked document to the running app as a QFileOpenEvent, not as arguments."""
    from PySide6.QtCore import QEvent, QObject

    class FileOpenFilter(QObject):
        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.FileOpen and event.file():
                window.take_files([Path(event.file())])
                return True
            return False

    app._file_open_filter = FileOpenFilter(app)
    app.installEventFilter(app._file_open_filter)


def run(argv: list[str] | None = None, files=(), on_started=None, single: bool = True) -> int:
    """The app; `files` (adapter folders, .zip, .safetensors, .gguf) are handled as if dropped on the
    window once it is up (`loradeck FILE…`, a file manager's "Open with"). With `single`, a LoRA Deck
    already running on the same data folder gets the files instead, and this start ends
    (single_instance.py). `on_started(app, window)` runs once the window is shown."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("huggingface_hub").propagate = False      # it has its own handler: no double lines
    from .app_log import install_log_file
    install_log_file()
    app = create_app(argv)
    from adapters_backend.paths import data_dir

    from . import single_instance
    from .settings import AppSettings
    settings = AppSettings()
    folder_problem = use_chosen_data_folder(settings)
    files = [Path(f) for f in files]
    instance = single_instance.claim(data_dir(), files) if single else None
    if single and instance is None:
        said = f"handed it {len(files)} file(s)" if files else "brought it to the front"
        print(f"LoRA Deck is already open on {data_dir()}: {said}.")
        return 0
    quit_on_signals(app)
    state, window = build_main_window(settings=settings)
    state.errors.install_hooks()
    open_files_on_macos(app, window)
    if instance is not None and instance.server is not None:
        instance.server.files_opened.connect(window.take_files)
    window.show()
    window.start()
    if folder_problem:
        from adapters_backend.errors import BackendError
        state.errors.report(BackendError(folder_problem), "Data folder")
    if files:
        from PySide6.QtCore import QTimer
        QTimer.singleShot(0, lambda: window.drops.handle_paths(files))
    if on_started is not None:
        on_started(app, window)
    return app.exec()


if __name__ == "__main__":
    sys.exit(run())
