"""300 fuzzed inputs — half random mutations of valid seeds, half from the structured hostile corpus
(adapters, archives, GGUF and Hugging Face models) — each read, inspected and checked for
compatibility (models: loaded and checked against the seed adapters) in a child process limited in
time and to 1 GB of address space: each ends with a result or a LoRA Deck error.

Each case gets 2 s of CPU time (not wall time: a busy test machine must not turn a slow neighbour into
a failure). The long run (10,000 cases) is `bench/fuzz_readers.py`.
"""
from __future__ import annotations

import os
import random
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fuzzlib import mutate_case, run_case, run_case_isolated, write_seeds  # noqa: E402
from hostile_corpus import GENERATORS, hostile_case  # noqa: E402

CASES = 300


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return write_seeds(tmp_path_factory.mktemp("seeds"))


def test_seeds_are_valid(seeds):
    for kind, path in seeds.items():
        outcome = run_case(kind, path, seeds=seeds)
        assert outcome.result == "ok", (kind, outcome.detail)


def test_fuzzed_and_hostile_inputs_fail_cleanly(seeds, tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    rng = random.Random(1234)
    findings, results, families = [], Counter(), Counter()
    for i in range(CASES):
        case = tmp_path / f"c{i}"
        case.mkdir()
        if i % 2:
            desc, path = hostile_case(seeds, case, rng)
            families[desc] += 1
        else:
            desc, path = mutate_case(seeds, case, rng)
        outcome = run_case_isolated(desc, path, seeds, seconds=2, mem_bytes=1 << 30)
        results[outcome.result] += 1
        if outcome.result == "FINDING":
            findings.append(f"{desc}: {outcome.detail}")
    assert not findings, "\n\n".join(findings[:5])
    assert results["error"] > CASES // 4 and results["ok"] > CASES // 10, results     # real damage, real reads
    assert len(families) >= len(GENERATORS) - 2, families                            # the corpus is exercised


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the isolated runner forks")
def test_the_runner_reports_hangs_memory_and_crashes_as_findings(seeds, tmp_path, monkeypatch):
    """The harness itself: a case that loops, one that allocates past the limit and one that raises a
    non-LoRA Deck error are findings, not passes."""
    import fuzzlib

    def looping(path, seeds_):
        while True:
            pass

    def hungry(path, seeds_):
        blocks = []
        while True:
            blocks.append(bytearray(64 << 20))

    def buggy(path, seeds_):
        raise KeyError("a reader bug")

    def sleeping(path, seeds_):
        import time
        time.sleep(60)

    for fake, expected, cpu, wall in ((looping, "s of CPU time", 1, 60), (hungry, "MemoryError", 30, 60),
                                      (buggy, "KeyError", 1, 60), (sleeping, "still running after 2 s", 1, 2)):
        monkeypatch.setattr(fuzzlib, "_exercise_adapter", fake)
        outcome = run_case_isolated("peft:fake", seeds["peft"], seeds, seconds=cpu, mem_bytes=1 << 30,
                                    wall_seconds=wall)
        assert outcome.result == "FINDING" and expected in outcome.detail, (expected, outcome)
