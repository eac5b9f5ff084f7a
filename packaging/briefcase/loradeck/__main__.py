"""Start the packaged app.

    loradeck                      the desktop app
    loradeck COMMAND ...          the command line (inspect, check, convert, serve, ...)
    loradeck FILE ...             the desktop app, with the files handed to it as if dropped on the
                                  window (what a file manager does for an associated .gguf /
                                  .safetensors, or a double-clicked adapter folder / .zip)

The launcher also runs LoRA Deck's chat-template helper process (adapters_backend/chat/template_sandbox.py)
when given its argument: in the packaged app sys.executable is this launcher, not a Python.

LORADECK_SELF_TEST=1 starts the app, waits until the main window is shown and has started
loading, prints one JSON line describing what it found (window title, plugins, demo assets),
and quits; the installers' smoke test uses it.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from desktop_app.launcher import opened_files  # the same choice as the dev `loradeck`


def _self_test_report(window) -> dict:
    import importlib.metadata as md

    from adapters_backend import demo
    from adapters_backend.plugins.manager import default_registry

    registry = default_registry()
    demo_ok = None
    try:
        demo_ok = Path(demo.demo_model_path()).is_file()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        demo_ok = f"{type(exc).__name__}: {exc}"
    return {
        "window": type(window).__name__,
        "title": window.windowTitle(),
        "visible": window.isVisible(),
        "plugins": {p.name: {"ok": p.ok, "distribution": p.distribution} for p in registry.plugins},
        "formats": sorted(registry.formats),
        # Straight from the installed metadata: empty would mean the manager fell back to its
        # built-in list because the bundle lost the entry points.
        "entry_points": sorted(ep.name for ep in md.entry_points(group="loradeck.plugins")),
        "demo_model": demo_ok,
        "executable": sys.executable,
        "argv0": sys.argv[0],
    }


def run_gui(files: list[Path]) -> int:
    from PySide6.QtCore import QEvent, QObject, QTimer

    from desktop_app.app import build_main_window, create_app, quit_on_signals

    app = create_app(sys.argv[:1])
    quit_on_signals(app)
    state, window = build_main_window()
    state.errors.install_hooks()

    class FileOpenFilter(QObject):
        """macOS delivers double-clicked documents as QFileOpenEvent, not as arguments."""

        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.FileOpen and event.file():
                window.drops.handle_paths([Path(event.file())])
                return True
            return False

    opener = FileOpenFilter(app)
    app.installEventFilter(opener)
    window.show()
    window.start()
    if files:
        QTimer.singleShot(0, lambda: window.drops.handle_paths(files))
    if os.environ.get("LORADECK_SELF_TEST") == "1":
        def report():
            print("LORADECK_SELF_TEST " + json.dumps(_self_test_report(window)), flush=True)
            window.close()
            app.quit()
        QTimer.singleShot(int(os.environ.get("LORADECK_SELF_TEST_DELAY_MS", "1500")), report)
    return app.exec()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from adapters_backend.chat.template_sandbox import HELPER_ARG
    if argv[:1] == [HELPER_ARG]:       # the app's own helper process (chat templates): this launcher is no Python
        from adapters_backend.chat.template_sandbox import helper_main
        helper_main()
        return 0
    files = opened_files(argv)
    if files is None and (argv or os.environ.get("LORADECK_SELF_TEST") != "1"):
        from desktop_app.launcher import main as launcher_main
        return launcher_main(argv)
    return run_gui(files or [])


if __name__ == "__main__":
    sys.exit(main())
