"""`loradeck parity --model-gguf BASE.gguf --model-hf BASE_DIR --adapter PATH[:STRENGTH] ...`"""
from __future__ import annotations

import json
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("parity", help="check that llama.cpp and PyTorch give the same logits for a mix",
                       description="Run the same tokens through the llama.cpp engine (GGUF) and the PyTorch engine "
                                   "(HF folder), base alone and with the adapter mix; print max |Δlogit| and a "
                                   "verdict. Exit code 0 = agree, 1 = mismatch, 2 = error.")
    p.add_argument("--model-gguf", required=True, type=Path, help="the base model as GGUF")
    p.add_argument("--model-hf", required=True, help="the same base model as a Hugging Face folder or Hub id")
    p.add_argument("--adapter", "-a", action="append", default=[], metavar="PATH[:STRENGTH]")
    p.add_argument("--text", default=None, help="text whose tokens are compared")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..engines.base import ActiveAdapter
    from ..engines.parity import DEFAULT_TEXT, run_parity
    from ..model_ref import split_strength

    mix = [ActiveAdapter(str(Path(p).expanduser()), s) for p, s in map(split_strength, args.adapter)]
    report = run_parity(args.model_gguf, args.model_hf, mix, text=args.text or DEFAULT_TEXT)
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.format())
    return 0 if report.verdict == "agree" else 1
