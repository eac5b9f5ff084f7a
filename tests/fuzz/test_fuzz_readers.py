"""A few hundred fuzzed adapters of every format: each is read or refused with a LoRA Deck error.

The long run (10,000+ cases) is `bench/fuzz_readers.py`.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fuzzlib import run_case, mutate_case, write_seeds  # noqa: E402

CASES = 300


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return write_seeds(tmp_path_factory.mktemp("seeds"))


def test_seeds_are_valid(seeds):
    for kind, path in seeds.items():
        outcome = run_case(kind, path)
        assert outcome.result == "ok", (kind, outcome.detail)


def test_fuzzed_inputs_fail_cleanly(seeds, tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    rng = random.Random(1234)
    findings, errors = [], 0
    for i in range(CASES):
        case = tmp_path / f"c{i}"
        case.mkdir()
        desc, path = mutate_case(seeds, case, rng)
        outcome = run_case(desc, path, seconds=20)
        errors += outcome.result == "error"
        if outcome.result == "FINDING":
            findings.append(f"{desc}: {outcome.detail}")
    assert not findings, "\n\n".join(findings[:5])
    assert errors > CASES // 4      # the mutations really break things
