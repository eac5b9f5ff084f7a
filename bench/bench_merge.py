"""Merge benchmark: `loradeck merge` peak memory ÷ base size, and time, for GGUF and HF bases.

    .venv/bin/python bench/bench_merge.py [--layers 8] [--types f32,f16,q8_0] [--hf]

Merges the r=64 all-linear adapter (every linear tensor of the model changes) into the random Llama
converted to each GGUF type; --layers 28 gives a ~1 GB f32 base. Goal: peak RSS ≤ 0.25× the base size.
With --hf also into the HF safetensors folder. Each merge runs in a fresh process.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lora_bench_models import adapter_r64, base_gguf, base_hf, mb, measure, timed  # noqa: E402

GOAL_MEM = 0.25


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--types", default="f32,f16,q8_0")
    ap.add_argument("--hf", action="store_true", help="also merge into the HF folder")
    args = ap.parse_args()

    print("preparing (cached after the first run):")
    adapter = timed("r=64 adapter", lambda: adapter_r64(args.layers))
    bases = {t: timed(f"GGUF base {t}", lambda t=t: base_gguf(args.layers, t)) for t in args.types.split(",")}
    if args.hf:
        bases["hf (bf16 safetensors)"] = base_hf(args.layers)
    py = sys.executable
    print()
    print(f"{'base':<24} {'size':>9} {'time':>8} {'peak RSS':>9} {'RSS/size':>9}")
    for label, base in bases.items():
        size = base.stat().st_size if base.is_file() else sum(f.stat().st_size for f in base.iterdir())
        with tempfile.TemporaryDirectory(dir=base.parent) as tmp:
            out = Path(tmp) / ("merged.gguf" if base.is_file() else "merged")
            cmd = [py, "-m", "adapters_backend.cli", "merge", "--base", str(base), "--adapter", f"{adapter}:0.7",
                   "-o", str(out)]
            seconds, rss = measure(cmd)
        ratio = rss / size
        flag = "OK" if ratio <= GOAL_MEM else "over goal"
        print(f"{label:<24} {mb(size):>9} {seconds:7.2f}s {mb(rss):>9} {ratio:9.3f}  {flag}", flush=True)
    print(f"\ngoal: peak RSS ≤ {GOAL_MEM}× base size (stated for a ~1 GB base; use --layers 28 for that)")


if __name__ == "__main__":
    main()
