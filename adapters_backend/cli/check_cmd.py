"""`loradeck check ADAPTER --base BASE [--engine llama.cpp|torch] [--json]`.

Exit status: 0 compatible, 1 partially compatible (some modules skipped), 3 incompatible
(2 is every command's "could not run" status: unreadable file, bad arguments).
"""
from __future__ import annotations

import json
from pathlib import Path

EXIT = {"compatible": 0, "partial": 1, "incompatible": 3}


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="will this adapter work with this base model?",
                       description="Check an adapter against a base model (GGUF file or HF model folder) from "
                                   "configs and shapes alone; no weights are loaded. Exit status: 0 compatible, "
                                   "1 partially compatible, 3 incompatible, 2 error.")
    p.add_argument("adapter", type=Path)
    p.add_argument("--base", type=Path, required=True, help="GGUF model file or HF model folder")
    p.add_argument("--engine", default="llama.cpp", choices=("llama.cpp", "torch"),
                   help="which engine's limits apply (default llama.cpp)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..core.base_model import load_base_model
    from ..core.compat import check_compatibility
    from ..formats.registry import read_adapter

    base = load_base_model(args.base)
    adapter = read_adapter(args.adapter, base=base)
    report = check_compatibility(adapter, base, engine=args.engine)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return EXIT[report.verdict]
    label = {"compatible": "compatible", "partial": "partially compatible", "incompatible": "incompatible"}
    print(f"{args.adapter} on {args.base}: {label[report.verdict]}")
    for reason in report.reasons:
        print(f"  - {reason}")
    skipped = {n: v for n, v in report.modules.items() if v.status != "ok"}
    for name, v in skipped.items():
        print(f"  {v.status}: {name}: {v.reason}")
    return EXIT[report.verdict]
