"""`loradeck inspect PATH [--base BASE] [--json]`."""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("inspect", help="describe an adapter (format, variants, ranks, scales, targets, …)",
                       description="Describe an adapter: folder, .safetensors, .gguf or .zip.")
    p.add_argument("path", type=Path, help="adapter folder or file")
    p.add_argument("--base", type=Path, help="base model (GGUF file or HF folder) to resolve module names against")
    p.add_argument("--json", action="store_true", help="print the stable JSON report (see README)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report.inspect import format_report, inspect_adapter

    base = None
    if args.base is not None:
        from ..core.base_model import load_base_model
        base = load_base_model(args.base)
    report = inspect_adapter(args.path, base=base)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
