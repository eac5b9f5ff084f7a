"""What the child-process check of a GGUF model (engines/llama_probe.py) adds to loading it.

Loads the benchmark model (a 748M-parameter f16 Llama by default, made by bench_engine.py) with the
llama.cpp engine three ways, alternating within each round so that every ratio comes from one run:
- unchecked: the engine's load with the child check skipped (what loading cost before it);
- first time: a model the check has not seen (an empty list of checked files);
- again: a model that passed before (the check finds it in the list and starts no child).
Each time is until the engine has loaded and answered its first token, after the page cache holds the
file (a first round, not counted, reads it once). Medians of --rounds.

    python bench/bench_model_probe.py [--rounds 5] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def first_token_after_load(model: Path, threads: int) -> float:
    from adapters_backend.engines.base import ChatMessage, SamplingParams
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    engine = LlamaCppEngine(n_ctx=512, n_threads=threads, n_threads_batch=threads, kv_snapshot_budget=0)
    start = time.perf_counter()
    try:
        engine.load(model)
        next(iter(engine.generate([ChatMessage("user", "Hello")], SamplingParams(max_tokens=1, temperature=0))))
        return time.perf_counter() - start
    finally:
        engine.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--ff", type=int, default=5632)
    ap.add_argument("--heads", type=int, default=16)
    args = ap.parse_args()

    import bench_switch

    from adapters_backend.engines import llama_probe
    from adapters_backend.paths import cache_dir
    model, _ = bench_switch.make_files(cache_dir() / "bench-switch", args.dim, args.layers, args.ff, args.heads,
                                       16, 4096)
    print(f"model: {model.name} ({model.stat().st_size / 1e9:.2f} GB), {args.threads} threads", flush=True)
    real_probe = llama_probe.probe_model
    times = {"unchecked": [], "first time": [], "again": []}
    with tempfile.TemporaryDirectory(prefix="loradeck-probe-bench-") as scratch:
        os.environ["LORADECK_CACHE_DIR"] = scratch          # the list of checked files starts empty
        first_token_after_load(model, args.threads)          # page cache warm, not counted
        for r in range(args.rounds):
            passed = Path(scratch) / "probed-models.json"
            passed.unlink(missing_ok=True)
            for name in (("unchecked", "first time", "again") if r % 2 == 0 else ("again", "first time", "unchecked")):
                if name == "again":
                    llama_probe.probe_model(model)           # make sure it is listed
                elif name == "first time":                   # forgotten on disk and by this process
                    passed.unlink(missing_ok=True)
                    llama_probe._passed_here.clear()
                import adapters_backend.engines.llama_cpp_engine as eng
                eng.probe_model = (lambda *args, **kwargs: None) if name == "unchecked" else real_probe
                times[name].append(first_token_after_load(model, args.threads))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    base = med["unchecked"]
    print(f"\nmedians of {args.rounds} rounds, load + first token: unchecked {base:.2f} s; first time "
          f"{med['first time']:.2f} s ({med['first time'] / base:.2f}×); checked before {med['again']:.2f} s "
          f"({med['again'] / base:.2f}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
