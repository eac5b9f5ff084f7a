r"""rank_pattern / alpha_pattern keys: the same answers as PEFT's `re.match(rf"(.*\.)?({key})$", name)`
for every key LoRA Deck accepts, in time linear in the name whatever the key; keys outside
module-name syntax are refused naming the key."""
from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from fixtures.deadline import deadline
from safetensors.numpy import save_file

from adapters_backend.errors import AdapterFormatError
from adapters_backend.formats.module_patterns import ModulePattern, PatternKeyError, PatternTable, WorkBudget
from adapters_backend.formats.registry import read_adapter


def peft_reference(key: str, name: str) -> bool:
    return bool(re.match(rf"(.*\.)?({key})$", name))


REAL_KEYS = [   # as they appear in configs on the Hub and in PEFT's docs and tests
    "q_proj", "model.layers.0.self_attn.q_proj", "layers.0.self_attn.q_proj", r"model\.layers\.0\.self_attn\.q_proj",
    r"layers\.\d+\.mlp\.down_proj", "(q|v)_proj", "q_proj|v_proj", r".*\.q_proj", "^model.layers.0.*",
    "layers.[0-9]+.self_attn.(q|k|v)_proj", "layers.1.*v_proj|h.1.*v_proj", r"layers\.(1[0-9]|2[0-3])\..*",
    "model.decoder.layers.0.encoder_attn.k_proj", r"transformer\.h\.\d{1,2}\.attn\.c_attn", "lm_head", "embed_tokens",
    r"(?:gate|up)_proj", r"experts\.[0-9]+\.w1", r"layers\.\d+\.(self_attn|mlp)\.\w+_proj$", "mlp.*",
]
NAMES = ["model.layers.0.self_attn.q_proj", "model.layers.12.self_attn.v_proj", "model.layers.3.mlp.down_proj",
         "model.layers.21.mlp.gate_proj", "transformer.h.7.attn.c_attn", "model.embed_tokens", "lm_head",
         "model.layers.0.block_sparse_moe.experts.5.w1", "model.decoder.layers.0.encoder_attn.k_proj",
         "model.layers.0.self_attn.q_projX", "q_proj", "xq_proj", "model.layers.1.self_attn.k_proj\n", ""]


def test_real_keys_match_like_peft():
    for key in REAL_KEYS:
        pattern = ModulePattern(key)
        for name in NAMES:
            assert pattern.matches(name) == peft_reference(key, name), (key, name)


def _random_key(rng: random.Random, depth: int = 0) -> str:
    atoms = ["a", "b", ".", r"\.", "_", "0", r"\d", r"\w", "[ab]", "[^a]", "[0-9]", "[.-_]", "^", "$"]
    parts = []
    for _ in range(rng.randint(1, 4)):
        if depth < 2 and rng.random() < 0.25:
            inner = "|".join(_random_key(rng, depth + 1) for _ in range(rng.randint(1, 3)))
            atom = f"({'?:' if rng.random() < 0.3 else ''}{inner})"
        else:
            atom = rng.choice(atoms)
        if atom not in ("^", "$") and rng.random() < 0.4:
            atom += rng.choice(["*", "+", "?", "{2}", "{0,2}", "{1,}", "*?", "??"])
        parts.append(atom)
    return "".join(parts)


def test_random_keys_agree_with_re_on_random_names():
    """Differential test against Python's re (short names, so re's backtracking stays cheap)."""
    rng = random.Random(18)
    checked = 0
    for _ in range(1500):
        key = _random_key(rng)
        try:
            pattern = ModulePattern(key)
        except PatternKeyError:
            continue
        re.compile(key)                           # whatever LoRA Deck accepts, PEFT accepts too
        for _ in range(12):
            name = "".join(rng.choice("ab._0x\n") for _ in range(rng.randint(0, 9)))
            assert pattern.matches(name) == peft_reference(key, name), (key, name)
            checked += 1
    assert checked > 8000


@pytest.mark.parametrize("key", [r"(a+)+$", r"(a|aa)*c", r"(.*)*x", r"(x+x+)+y", r"((a*)*)*b", r"(\w+\s?)+$",
                                 r"(.*a){12}", r"([a-z]+\.?)*_proj_lora"])
def test_pathological_keys_are_linear(key):
    """Keys that make a backtracking engine take exponential (or high-polynomial) time."""
    names = ["a" * 5000 + "!", "model.layers.0." + "a" * 3000 + "b", "x" * 4000 + "z", "." * 2000 + "_"]
    with deadline(10):
        pattern = ModulePattern(key, WorkBudget(10**8))
        for name in names:
            pattern.matches(name)
    for name in ("aab", "model.x", "aaaaaaaaaa"):             # and still the right answers
        assert pattern.matches(name) == peft_reference(key, name)


def test_a_crafted_key_in_a_downloaded_adapter_does_not_hang_the_read(tmp_path):
    """The issue's case: an alpha_pattern key with nested quantifiers against a long module name.
    With Python's re this read does not end (2^40 steps); here it ends at once."""
    folder = tmp_path / "evil"
    folder.mkdir()
    module = "model.layers.0.self_attn." + "a" * 40 + "b"
    save_file({f"base_model.model.{module}.lora_A.weight": np.ones((2, 8), np.float32),
               f"base_model.model.{module}.lora_B.weight": np.ones((8, 2), np.float32)},
              str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
                                                            "alpha_pattern": {"(a+)+$": 8, "a+b": 6}}))
    with deadline(10):
        adapter = read_adapter(folder)
    assert adapter.modules[module].alpha == 6.0          # "(a+)+$" does not match "…ab"; "a+b" does


@pytest.mark.parametrize("key, reason", [
    ("(?=q)q_proj", "'(?…)' construct"), (r"(q)\1", r"escape \1"), ("q*+", "possessive"),
    ("(?i)Q_PROJ", "'(?…)' construct"), (r"\bq_proj", r"escape \b"), ("[[a]]", "nested set"),
    ("a{2000}", "repeat count above 1000"), ("q_proj(", "missing ')'"), ("q_proj)", "unbalanced ')'"),
    ("*q", "nothing to repeat"), ("q**", "two quantifiers"), ("a{3,2}", "n < m"), ("[z-a]", "runs backwards"),
    (r"[\d-z]", r"range with \d"), ("x" * 600, "at most 512"), ("((((a{30}){30}){30}){30})", "more than 4096 states"),
])
def test_keys_outside_module_name_syntax_are_refused_naming_the_key(tmp_path, key, reason):
    with pytest.raises(PatternKeyError, match=re.escape(reason)):
        ModulePattern(key)
    folder = tmp_path / "p"
    folder.mkdir()
    name = "base_model.model.model.layers.0.self_attn.q_proj"
    save_file({f"{name}.lora_A.weight": np.ones((2, 8), np.float32),
               f"{name}.lora_B.weight": np.ones((8, 2), np.float32)}, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2, "lora_alpha": 4,
                                                            "rank_pattern": {key: 2}}))
    with pytest.raises(AdapterFormatError) as info:
        read_adapter(folder)
    assert "adapter_config.json: rank_pattern: key" in str(info.value) and repr(key)[:40] in str(info.value)


def test_work_is_bounded_per_config():
    table = PatternTable({f"k{i}.*x": i for i in range(50)}, WorkBudget(20_000))
    with pytest.raises(PatternKeyError, match="too much work"):
        for n in range(200):
            table.value(f"model.layers.{n}." + "y" * 200, None)
    with pytest.raises(PatternKeyError, match="at most 10000"):
        PatternTable({f"k{i}": 1 for i in range(10_001)})


def test_pattern_table_first_match_agrees_with_peft():
    """Plain keys go through a lookup table, the others through their automaton: the first matching
    key in file order must still be PEFT's, newlines and escaped dots included."""
    rng = random.Random(7)
    plain_parts = ["model", "layers", "0", "1", "12", "self_attn", "q_proj", "mlp", "up-proj", "x"]
    for _ in range(300):
        keys = {}
        for i in range(rng.randint(1, 12)):
            if rng.random() < 0.6:
                key = rng.choice([".", r"\."]).join(rng.choice(plain_parts) for _ in range(rng.randint(1, 4)))
            else:
                key = _random_key(rng, depth=2)        # no groups: re's own backtracking stays short here
                try:
                    ModulePattern(key)
                except PatternKeyError:
                    continue
            keys.setdefault(key, i)
        table = PatternTable(keys)
        for _ in range(20):
            name = ".".join(rng.choice(plain_parts + ["a", "b"]) for _ in range(rng.randint(1, 5)))
            if rng.random() < 0.1:
                name += "\n"
            if rng.random() < 0.1:
                name = name.replace(".", "_", 1)
            expected = next((v for k, v in keys.items() if peft_reference(k, name)), None)
            assert table.value(name, None) == expected, (keys, name)
