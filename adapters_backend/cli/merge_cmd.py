"""`loradeck merge` (bake adapters into a model) and `loradeck blend` (adapters → one new PEFT adapter).

    loradeck merge --base model.Q8_0.gguf --adapter a/ --adapter b.safetensors:-0.5 -o merged.gguf
    loradeck merge --base hf-model/ --adapter a/:0.8 -o merged-model/
    loradeck blend a/:1 b/:0.5 -o blended/ [--rank 16]

Exit status (main.py): 0 done, 3 an adapter does not fit the base (nothing written), 2 any other error.
"""
from __future__ import annotations

import sys
from pathlib import Path

from .progress import progress_context


def add_parser(sub) -> None:
    p = sub.add_parser("merge", help="bake adapters into a model (GGUF or HF folder)",
                       description="W' = W + Σ sᵢ·ΔWᵢ with each adapter's exact ΔW (DoRA included). A GGUF base gives "
                                   "a GGUF (quantized bases are re-quantized to the same type where gguf-py can; "
                                   "untouched tensors are copied byte for byte); an HF folder gives an HF folder, "
                                   "sharded like the input.")
    p.add_argument("--base", type=Path, required=True, help="GGUF model file or HF model folder")
    p.add_argument("--adapter", "-a", action="append", required=True, metavar="PATH[:STRENGTH]",
                   help="an adapter and its strength (default 1; negative subtracts); repeat for several")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .gguf file or folder")
    p.add_argument("--outtype", choices=("f32", "f16", "bf16", "q8_0"),
                   help="GGUF only: type of the changed tensors (default: the base tensor's own type)")
    p.add_argument("--force", action="store_true", help="HF output: replace an existing folder")
    p.set_defaults(func=run_merge)

    b = sub.add_parser("blend", help="combine adapters at fixed strengths into one PEFT adapter",
                       description="Writes a PEFT LoRA equal to the weighted sum of the adapters (exact: factors are "
                                   "concatenated, rank Σ rᵢ). --rank reduces every module by SVD and reports the error.")
    b.add_argument("adapters", nargs="+", metavar="ADAPTER[:STRENGTH]")
    b.add_argument("-o", "--output", type=Path, required=True, help="output folder (PEFT adapter)")
    b.add_argument("--rank", type=int, help="reduce every module to at most this rank (SVD)")
    b.add_argument("--base", type=Path, help="base model (needed only for DoRA adapters)")
    b.add_argument("--max-error", type=float, default=1e-3, help="DoRA only: SVD error limit (default 1e-3)")
    b.add_argument("--force", action="store_true", help="replace an existing output folder")
    b.set_defaults(func=run_blend)


def _print_common(result) -> None:
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for n in result.notes:
        print(f"note: {n}")


def run_merge(args) -> int:
    from ..model_ref import split_strength

    specs = [split_strength(a) for a in args.adapter]
    ctx = progress_context("merging", "tensor")
    if args.base.is_dir():
        if args.outtype:
            print("warning: --outtype applies to GGUF output only; ignored", file=sys.stderr)
        from ..merge.hf_merge import merge_into_hf
        result = merge_into_hf(args.base, specs, args.output, overwrite=args.force, ctx=ctx)
    else:
        from ..merge.gguf_merge import merge_into_gguf
        result = merge_into_gguf(args.base, specs, args.output, outtype=args.outtype, ctx=ctx)
    _print_common(result)
    types = sorted(set(result.types.values()))
    print(f"wrote {result.path}: {len(result.touched)} tensors merged ({', '.join(types) or '-'}), "
          f"{result.copied} copied unchanged")
    return 0


def run_blend(args) -> int:
    from ..errors import UsageError
    from ..merge.blend import blend
    from ..model_ref import split_strength

    if args.rank is not None and args.rank < 1:
        raise UsageError("--rank must be at least 1")
    specs = [split_strength(a) for a in args.adapters]
    result = blend(specs, args.output, rank=args.rank, base=args.base, max_error=args.max_error,
                   overwrite=args.force, ctx=progress_context("blending", "module"))
    _print_common(result)
    ranks = sorted(set(result.ranks.values()))
    print(f"wrote {result.path}: PEFT LoRA, {len(result.ranks)} modules, rank "
          f"{ranks[0] if len(ranks) == 1 else f'{ranks[0]}–{ranks[-1]}'}"
          + (f", max relative error {result.max_error:.2e}" if result.errors else " (exact)"))
    return 0
