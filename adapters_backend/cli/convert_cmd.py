"""`loradeck convert ADAPTER --base BASE [-o OUT.gguf] [--outtype f32|f16|bf16|q8_0] [--max-error E]`.

Writes a llama.cpp LoRA GGUF (loads in llama.cpp, llama-server, koboldcpp…). Without -o the file goes
to LoRA Deck's cache (reused by the app) and its path is printed.
Exit status (main.py): 0 done, 3 the adapter does not fit the base (nothing written), 2 any other error.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .progress import progress_context


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert an adapter to a llama.cpp LoRA GGUF",
                       description="Convert any adapter LoRA Deck reads (PEFT, Ludwig, Kohya/LyCORIS, .zip) into a "
                                   "llama.cpp LoRA GGUF for BASE, with every module's true scale (rsLoRA, "
                                   "rank/alpha patterns, AdaLoRA, LoHa, LoKr) exact at strength 1. DoRA is "
                                   "converted by truncated SVD (see --max-error); `loradeck merge` is exact for it.")
    p.add_argument("adapter", type=Path, help="adapter folder, file or .zip")
    p.add_argument("--base", type=Path, required=True, help="GGUF model file (enough on its own) or HF model folder")
    p.add_argument("-o", "--output", type=Path, help="output .gguf (default: LoRA Deck's cache; the path is printed)")
    p.add_argument("--outtype", choices=("f32", "f16", "bf16", "q8_0"),
                   help="tensor type (default: the adapter's own float precision)")
    p.add_argument("--max-error", type=float, default=1e-3,
                   help="DoRA only: largest relative Frobenius error of the truncated SVD (default 1e-3)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..convert.cache import convert_cached
    from ..convert.to_gguf import convert_to_gguf, rank_summary
    ctx = progress_context("converting", "tensor")
    if args.output is not None:
        result = convert_to_gguf(args.adapter, args.base, args.output, outtype=args.outtype,
                                 max_error=args.max_error, ctx=ctx)
    else:
        result = convert_cached(args.adapter, args.base, outtype=args.outtype, max_error=args.max_error, ctx=ctx)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for name, (rank, err) in sorted(result.dora.items()):
        print(f"DoRA {name}: rank {rank}, relative error {err:.2e}")
    for note in result.notes:
        print(f"note: {note}")
    how = " (from cache)" if result.cached else ""
    print(f"wrote {result.path}{how}: {result.n_tensors} tensors ({rank_summary(result.ranks)}), "
          f"{result.outtype}, adapter.lora.alpha = {result.alpha:g}")
    return 0
