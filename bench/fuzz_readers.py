"""Long-running fuzz of every adapter reader: `python bench/fuzz_readers.py [--cases 10000] [--seed N]`.

Each case runs in this process under a time limit and an address-space limit; findings (anything but
success or a LoRA Deck error) are printed with the input kept under --keep for replay.
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))
from fuzzlib import mutate_case, run_case, write_seeds  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mem-gb", type=float, default=4.0, help="address-space limit for this process")
    ap.add_argument("--keep", type=Path, default=Path("fuzz-findings"))
    args = ap.parse_args()
    limit = int(args.mem_gb * 1024**3)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    work = Path(tempfile.mkdtemp(prefix="loradeck-fuzz-"))
    os.environ["LORADECK_CACHE_DIR"] = str(work / "cache")
    seeds = write_seeds(work / "seeds")
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    start = time.perf_counter()
    for i in range(args.cases):
        case = work / f"case{i}"
        case.mkdir()
        desc, path = mutate_case(seeds, case, rng)
        outcome = run_case(desc, path)
        counts[outcome.result] += 1
        if outcome.result == "FINDING":
            keep = args.keep / f"case{i}"
            shutil.copytree(case, keep, dirs_exist_ok=True)
            print(f"FINDING case {i} ({desc}) kept in {keep}:\n{outcome.detail}\n", flush=True)
        shutil.rmtree(case, ignore_errors=True)
        if (i + 1) % 1000 == 0:
            print(f"{i + 1} cases, {dict(counts)}, {time.perf_counter() - start:.0f} s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    print(f"done: {args.cases} cases in {time.perf_counter() - start:.0f} s: {dict(counts)}")
    return 1 if counts["FINDING"] else 0


if __name__ == "__main__":
    sys.exit(main())
