"""`loradeck plugins [--json]`: every plugin, what it contributes, its version and its errors."""
from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("plugins", help="list plugins, what they add and any errors")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..plugins.manager import default_registry

    registry = default_registry()
    # Resolve every architecture table too, so a plugin that imports fine but breaks on use shows up.
    for arch_id in list(registry.architectures):
        try:
            registry.architecture_table(arch_id)
        except Exception:  # noqa: BLE001 - recorded on the plugin record
            pass
    for fmt_id in list(registry.formats):
        for which in ("sniff", "read"):
            try:
                registry.format_function(fmt_id, which)
            except Exception:  # noqa: BLE001 - recorded on the plugin record
                pass
    rows = [p.as_dict() for p in registry.plugins]
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
    return 0 if all(r["ok"] for r in rows) else 1
