"""`loradeck` command line. Each subcommand lives in its own module with `add_parser(subparsers)`.

Errors of the LoRA Deck family are printed as one line (`loradeck: error: …`) with exit status 2;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import BackendError

# Subcommand modules, in the order `loradeck --help` lists them.
COMMAND_MODULES = (
    "adapters_backend.cli.inspect_cmd",
    "adapters_backend.cli.check_cmd",
    "adapters_backend.cli.plugins_cmd",
    "adapters_backend.cli.convert_cmd",
    "adapters_backend.cli.merge_cmd",
    "adapters_backend.cli.chat_cmd",
    "adapters_backend.cli.serve_cmd",
    "adapters_backend.cli.parity_cmd",
    "adapters_backend.cli.hub_cmd",
    "adapters_backend.cli.library_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loradeck",
        description="LoRA Deck: run local LLMs with LoRA adapters. Without a command, opens the desktop app.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # huggingface_hub prints its warnings through its own handler; passed on to ours too, each would
    # show twice.
    logging.getLogger("huggingface_hub").propagate = False
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except BackendError as exc:
        print(f"loradeck: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loradeck: interrupted", file=sys.stderr)
        return 130
