"""The `loradeck` console script: with arguments it is the command line, without it opens the app.

    loradeck                      the desktop app
    loradeck COMMAND ...          the command line (inspect, check, convert, serve, ...)
    loradeck FILE ...             the desktop app, with the files handed to it as if dropped on the
                                  window (what a file manager does for an associated .gguf /
                                  .safetensors, or a double-clicked adapter folder / .zip)

This module must not import Qt at import time, so the CLI starts fast and works without a display.
The packaged app's entry (packaging/briefcase/loradeck/__main__.py) makes the same choice with
`opened_files`.
"""
from __future__ import annotations

import sys
from pathlib import Path

OPENABLE_SUFFIXES = (".gguf", ".safetensors", ".zip")


def opened_files(argv: list[str]) -> list[Path] | None:
    """The paths to open when every argument is an existing adapter/model path (and the first is not
    a command name, even where a folder of that name exists), else None."""
    if not argv or argv[0].startswith("-"):
        return None
    paths = [Path(a).expanduser() for a in argv]
    for p in paths:
        if not p.exists() or not (p.is_dir() or p.suffix.lower() in OPENABLE_SUFFIXES):
            return None
    from adapters_backend.cli.main import command_names
    if argv[0] in command_names():
        return None
    return paths


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    files = opened_files(argv)
    if argv and files is None:
        from adapters_backend.cli import main as cli_main
        return cli_main(argv)
    from desktop_app.app import run  # the GUI is imported only when launched
    return run(files=files or [])


if __name__ == "__main__":
    sys.exit(main())
