"""`loradeck plugins [--json]`: every plugin, what it contributes, its version and its errors.

Exit status 0 whatever the plugins' state: listing broken plugins is this command's job."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("plugins", help="list plugins, what they add and any errors")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..plugins.manager import default_registry

    # Resolve and try every contribution, so a plugin that imports fine but breaks on use shows up too.
    rows = [p.as_dict() for p in default_registry().check()]
    if args.json:
        print(json.dumps({"schema": "loradeck.plugins/1", "plugins": rows}, indent=2))
        return 0
    for r in rows:
        status = "ok" if r["ok"] else "BROKEN"
        dist = f"{r['distribution'] or '?'} {r['version'] or ''}".strip()
        print(f"{r['name']:16} {status:6} {dist:20} {r['title'] or r['target']}")
        if r["formats"]:
            print(f"{'':16} formats: {', '.join(r['formats'])}")
        if r["architectures"]:
            print(f"{'':16} architectures: {', '.join(r['architectures'])}")
        for e in r["errors"]:
            print(f"{'':16} error: {e}")
    return 0
