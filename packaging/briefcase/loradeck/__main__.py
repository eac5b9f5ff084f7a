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
    from desktop_app.app import run

    if os.environ.get("LORADECK_SELF_TEST") != "1":
        return run(sys.argv[:1], files)

    def report_later(app, window):
        from PySide6.QtCore import QTimer

        def report():
            print("LORADECK_SELF_TEST " + json.dumps(_self_test_report(window)), flush=True)
            window.close()
            app.quit()
        QTimer.singleShot(int(os.environ.get("LORADECK_SELF_TEST_DELAY_MS", "1500")), report)

    # The self-test reports on a window of its own, even where a LoRA Deck is open on the same data.
    return run(sys.argv[:1], files, on_started=report_later, single=False)


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
