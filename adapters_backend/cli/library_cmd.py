"""`loradeck library list|install|remove|rename|notes` — the adapter library from the command line."""
from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("library", help="installed adapters: list, install, remove, rename")
    ls = p.add_subparsers(dest="library_command", metavar="ACTION", required=True)
    _add_actions(ls)
    # The everyday actions also stand at the top level: `loradeck install PATH`, `loradeck list`, …
    _add_actions(sub, top_level=True)


def _add_actions(ls, top_level: bool = False) -> None:
    hint = " (same as `loradeck library …`)" if top_level else ""
    a = ls.add_parser("list", help="every installed adapter" + hint)
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=run_list)
    a = ls.add_parser("install", help="install a folder, .zip, .safetensors, .gguf, or hf:OWNER/REPO[@REV]" + hint)
    a.add_argument("source", help="folder, .zip, .safetensors, .gguf, or hf:OWNER/REPO[@REV]")
    a.add_argument("--name")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=run_install)
    a = ls.add_parser("remove", help="remove an adapter (by id or name)" + hint)
    a.add_argument("id")
    a.add_argument("--json", action="store_true", help="print the removed entry as JSON")
    a.set_defaults(func=run_remove)
    a = ls.add_parser("rename", help="change an adapter's label" + hint)
    a.add_argument("id")
    a.add_argument("name")
    a.add_argument("--json", action="store_true", help="print the updated entry as JSON")
    a.set_defaults(func=run_rename)
    if top_level:
        return
    a = ls.add_parser("notes", help="set an adapter's notes (shown in the library)")
    a.add_argument("id")
    a.add_argument("notes")
    a.add_argument("--json", action="store_true", help="print the updated entry as JSON")
    a.set_defaults(func=run_notes)


def _open():
    from ..library import Library
    lib = Library()
    for problem in lib.problems:
        print(f"loradeck: warning: {problem}", file=sys.stderr)
    return lib


def run_list(args) -> int:
    entries = _open().list()
    if args.json:
        print(json.dumps([e.as_dict() for e in entries], indent=2))
        return 0
    if not entries:
        print("the library is empty; add adapters with `loradeck library install PATH` or `hub download --install`")
    for e in entries:
        facts = " ".join([e.format, e.variant] + [f"{k}={v}" for k, v in (("r", e.rank_text), ("α", e.alpha_text)) if v])
        flag = "  [MISSING]" if e.missing else ""
        print(f"{e.id:<28} {e.name:<28} {facts:<24} {e.source}{flag}")
    return 0


def run_install(args) -> int:
    from ..hub.install import install_from_hub, parse_hub_ref
    ref = parse_hub_ref(args.source)
    if ref is not None:
        e = install_from_hub(ref[0], revision=ref[1], name=args.name)
    else:
        e = _open().install(args.source, name=args.name)
    print(json.dumps(e.as_dict(), indent=2) if args.json else f"installed '{e.name}' as {e.id} ({e.format}, {e.variant})")
    return 0


def run_remove(args) -> int:
    lib = _open()
    e = lib.get(args.id)
    lib.remove(e.id)
    print(json.dumps({"removed": e.as_dict()}, indent=2) if args.json else f"removed '{e.name}' ({e.id})")
    return 0


def run_rename(args) -> int:
    e = _open().rename(args.id, args.name)
    print(json.dumps(e.as_dict(), indent=2) if args.json else f"{e.id} is now '{e.name}'")
    return 0


def run_notes(args) -> int:
    e = _open().set_notes(args.id, args.notes)
    print(json.dumps(e.as_dict(), indent=2) if args.json else f"notes of '{e.name}' ({e.id}) set")
    return 0
