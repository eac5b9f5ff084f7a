"""The `loradeck` console script: with arguments it is the command line, without it opens the app.

This module must not import Qt at import time, so the CLI starts fast and works without a display.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from adapters_backend.cli import main as cli_main

    if argv:
        return cli_main(argv)
    from desktop_app.app import run  # noqa: PLC0415 - the GUI is imported only when launched
    return run()


if __name__ == "__main__":
    sys.exit(main())
