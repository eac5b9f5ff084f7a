"""Long-running fuzz of every adapter reader, the base-model readers and the compatibility check:

    python bench/fuzz_readers.py [--cases 10000] [--seed N] [--hostile 0.5] [--seconds 2] [--mem-gb 1]

Half of the cases (--hostile) come from the structured hostile corpus (tests/fuzz/hostile_corpus.py),
the rest are random mutations of valid seeds. Each case runs in a forked child limited to --seconds
of CPU time and --mem-gb of address space (and a generous wall-clock limit for a case that blocks);
anything but a result or a LoRA Deck error is a finding, printed with its input kept under --keep
for replay. The summary gives outcome counts per case family, CPU and wall times, and the largest
resident set.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))            # fixtures
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fuzz"))
from fuzzlib import mutate_case, run_case_isolated, write_seeds  # noqa: E402
from hostile_corpus import hostile_case  # noqa: E402


def make_case(seeds, case_dir: Path, rng: random.Random, hostile: float) -> tuple[str, Path]:
    if rng.random() < hostile:
        return hostile_case(seeds, case_dir, rng)
    return mutate_case(seeds, case_dir, rng)


def family(description: str) -> str:
    kind, how = description.split(":")[0], description.split(":")[1:]
    return f"{kind}:{how[1]}" if how and how[0] == "hostile" else f"{kind}:mutation"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hostile", type=float, default=0.5, help="share of structured hostile cases")
    ap.add_argument("--seconds", type=float, default=2.0, help="CPU-time limit per case")
    ap.add_argument("--mem-gb", type=float, default=1.0, help="address space a case may add")
    ap.add_argument("--keep", type=Path, default=Path("fuzz-findings"))
    args = ap.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    work = Path(tempfile.mkdtemp(prefix="loradeck-fuzz-"))
    os.environ["LORADECK_CACHE_DIR"] = str(work / "cache")
    seeds = write_seeds(work / "seeds")
    rng = random.Random(args.seed)
    counts: Counter[str] = Counter()
    per_family: dict[str, Counter] = defaultdict(Counter)
    times: list[tuple[float, str]] = []
    walls: list[float] = []
    max_rss = (0.0, "")
    start = time.perf_counter()
    for i in range(args.cases):
        case = work / f"case{i}"
        case.mkdir()
        desc, path = make_case(seeds, case, rng, args.hostile)
        outcome = run_case_isolated(desc, path, seeds, seconds=args.seconds, mem_bytes=int(args.mem_gb * 1024**3))
        counts[outcome.result] += 1
        per_family[family(desc)][outcome.result] += 1
        times.append((outcome.cpu_seconds, desc))
        walls.append(outcome.seconds)
        if outcome.max_rss_mb > max_rss[0]:
            max_rss = (outcome.max_rss_mb, desc)
        if outcome.result == "FINDING":
            keep = args.keep / f"case{i}"
            shutil.copytree(case, keep, dirs_exist_ok=True)
            print(f"FINDING case {i} ({desc}) kept in {keep}:\n{outcome.detail}\n", flush=True)
        shutil.rmtree(case, ignore_errors=True)
        shutil.rmtree(work / "cache", ignore_errors=True)      # unpacked zips: the next case starts clean
        if (i + 1) % 1000 == 0:
            print(f"{i + 1} cases, {dict(counts)}, {time.perf_counter() - start:.0f} s", flush=True)
    shutil.rmtree(work, ignore_errors=True)
    secs, walls = sorted(t for t, _ in times), sorted(walls)

    def pct(xs: list[float], q: float) -> str:
        return f"{xs[min(len(xs) - 1, int(q * len(xs)))] * 1000:.0f} ms"

    print(f"\ndone: {args.cases} cases in {time.perf_counter() - start:.0f} s: {dict(counts)}")
    print(f"CPU time per case (the child process, fork included): median {statistics.median(secs) * 1000:.0f} ms, "
          f"p99 {pct(secs, 0.99)}, max {secs[-1] * 1000:.0f} ms (limit {args.seconds:.1f} s)")
    print(f"wall time per case (the case itself): median {statistics.median(walls) * 1000:.1f} ms, "
          f"p99 {pct(walls, 0.99)}, max {walls[-1] * 1000:.0f} ms (load average now {os.getloadavg()[0]:.1f})")
    print(f"largest resident set {max_rss[0]:.0f} MB ({max_rss[1]}; limit {args.mem_gb:.1f} GB of address space)")
    print("most CPU:", "; ".join(f"{t * 1000:.0f} ms {d}" for t, d in sorted(times, reverse=True)[:5]))
    for fam in sorted(per_family):
        print(f"  {fam:32} {dict(per_family[fam])}")
    return 1 if counts["FINDING"] else 0


if __name__ == "__main__":
    sys.exit(main())
