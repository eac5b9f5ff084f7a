"""`loradeck` command line. Each subcommand lives in its own module with `add_parser(subparsers)`.

Exit status, the same for every command: 0 done; 2 an error, printed as one line
(`loradeck: error: …`, naming the file and the problem); 3 an adapter does not fit the base model
(IncompatibleAdapterError, with the modules that do not fit), which is also `check`'s "incompatible"
verdict. `check` adds 1 for "partially compatible", `parity` 1 for "the engines disagree" and
`plugins` 1 for "a plugin is broken". An exception outside the LoRA Deck family is a bug and keeps
its traceback. Output cut short by its reader (`loradeck … | head`) ends quietly with 141, what the
shell reports for a program stopped by SIGPIPE (1, Python's own choice, would read as "partially
compatible" from `check`).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from ..errors import BackendError, IncompatibleAdapterError
from .terminal import inert_output

EXIT_ERROR = 2
EXIT_INCOMPATIBLE = 3
EXIT_BROKEN_PIPE = 128 + 13

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


def command_names() -> set[str]:
    """Every command `loradeck COMMAND` accepts."""
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return set(action.choices)
    return set()


def main(argv: list[str] | None = None) -> int:
    with inert_output():         # names and answers from outside never reach the terminal as commands
        return _run(argv)


def _run(argv: list[str] | None) -> int:
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
        code = int(args.func(args) or 0)
        sys.stdout.flush()        # inside the try: a reader that has gone shows up here, not at exit
        return code
    except BrokenPipeError:
        if not _stdout_gone():
            raise
        # Python's recommended handling (signal module docs, "Note on SIGPIPE"): point stdout at devnull
        # so the flush at exit cannot raise again, and stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except IncompatibleAdapterError as exc:
        print_incompatible(exc)
        return EXIT_INCOMPATIBLE
    except BackendError as exc:
        print(f"loradeck: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("loradeck: interrupted", file=sys.stderr)
        return 130


def print_incompatible(exc: IncompatibleAdapterError) -> None:
    """The error line, then each module that does not fit with its reason."""
    print(f"loradeck: error: {exc}", file=sys.stderr)
    report = getattr(exc, "report", None)
    if report is not None:
        for name, v in sorted(report.modules.items()):
            if v.status == "mismatch":
                print(f"  mismatch: {name}: {v.reason}", file=sys.stderr)


def _stdout_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (and not some other pipe or socket that broke)."""
    try:
        import select
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (AttributeError, OSError, ValueError):   # no poll() (Windows) or no real stdout: assume it was
        return True
