"""Activated LoRA in the llama.cpp engine, against PEFT's own aLoRA forward on a tiny Llama: the
adapter acts from the last occurrence of its invocation tokens on, the KV cache before it is the base
model's and is shared by every aLoRA and the base (switching costs only the tokens after the
invocation), and every reused cache gives the logits of a fresh evaluation."""
from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.tiny_alora import INVOCATION, OTHER_INVOCATION, make_alora, peft_logits
from fixtures.tiny_gguf import tiny_models  # noqa: F401  (pytest fixture)

from adapters_backend.engines.base import ActiveAdapter

pytest.importorskip("peft")
TOL = 3e-4                              # HF f32 vs llama.cpp f32 (tests/convert/test_parity.py)
PREFIX = [1, 17, 5, 8, 9, 11, 64, 23, 12, 19, 77, 31, 18, 6, 29, 13, 21]


def with_invocation(inv=INVOCATION, tail=(7, 201, 33, 64, 14, 22)):
    return PREFIX + list(inv) + list(tail)


@pytest.fixture
def engine(tiny_models, make_engine):
    return make_engine(tiny_models.gguf("llama"), logits_all=True, kv_snapshot_budget=64 << 20)


@pytest.fixture
def fresh(tiny_models, make_engine):
    e = make_engine(tiny_models.gguf("llama"), logits_all=True, kv_snapshot_budget=0)

    def logits(mix, toks):
        e.set_adapters(mix)
        return e.eval_logits(toks)

    return logits


def test_the_converted_gguf_carries_the_invocation_tokens(engine):
    import gguf

    engine.set_adapters([ActiveAdapter(make_alora(1), 1.0)])
    path = engine.adapters()[0]["gguf"]
    field = gguf.GGUFReader(path).fields["adapter.alora.invocation_tokens"]
    assert field.types == [gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT32]     # what llama.cpp reads
    assert list(field.contents()) == list(INVOCATION)
    assert engine._invocation(engine._mix[0][1].handle) == INVOCATION                 # and llama.cpp agrees


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_an_alora_acts_from_its_invocation_on_as_peft_does(engine, strength, tmp_path):
    folder = make_alora(1)
    toks = with_invocation()
    engine.set_adapters([ActiveAdapter(folder, strength)])
    got = engine.eval_logits(toks)
    if strength != 1.0:                    # PEFT at another strength: scale its up-factors
        folder = _scaled_copy(folder, strength, tmp_path / "scaled")
    ref = peft_logits(folder, toks)
    base = peft_logits(None, toks)
    start = len(PREFIX)
    assert np.abs(got - ref).max() <= TOL, np.abs(got - ref).max()
    assert np.abs(ref[:start] - base[:start]).max() == 0           # before the invocation: the base
    assert np.abs(ref[start:] - base[start:]).max() > 100 * TOL    # from it on: the adapter


def test_the_last_occurrence_counts_and_no_occurrence_means_off(engine):
    folder = make_alora(1)
    twice = PREFIX[:5] + list(INVOCATION) + PREFIX[5:] + list(INVOCATION) + [7, 201, 33]
    engine.set_adapters([ActiveAdapter(folder, 1.0)])
    assert np.abs(engine.eval_logits(twice) - peft_logits(folder, twice)).max() <= TOL
    none = PREFIX + [7, 201, 33]
    assert np.abs(engine.eval_logits(none) - peft_logits(None, none)).max() <= TOL


def test_switching_aloras_reuses_the_shared_base_prefix_exactly(engine, fresh):
    a1, a2 = make_alora(1), make_alora(2)
    other = make_alora(3, OTHER_INVOCATION)
    toks = with_invocation()
    engine.set_adapters([ActiveAdapter(a1, 1.0)])
    engine.next_token_logits(toks)
    engine.set_adapters([ActiveAdapter(a2, 1.0)])                   # same invocation, another adapter
    got = engine.next_token_logits(toks)
    assert engine._reused == len(PREFIX)                             # everything before the invocation
    np.testing.assert_allclose(got, fresh([ActiveAdapter(a2, 1.0)], toks)[-1], atol=1e-4 * np.abs(got).max())
    engine.set_adapters([])                                          # the base: the same prefix again
    engine.next_token_logits(toks)
    assert engine._reused >= len(PREFIX)
    engine.set_adapters([ActiveAdapter(a1, 1.0)])                    # back: its own snapshot, all of it
    got = engine.next_token_logits(toks + [5, 6])
    assert engine._reused == len(toks)
    np.testing.assert_allclose(got, fresh([ActiveAdapter(a1, 1.0)], toks + [5, 6])[-1],
                               atol=1e-4 * np.abs(got).max())
    # An aLoRA with other invocation tokens that occur later: shares the base part up to there.
    later = toks + list(OTHER_INVOCATION) + [9, 8]
    engine.set_adapters([ActiveAdapter(other, 1.0)])
    got = engine.next_token_logits(later)
    assert engine._reused >= len(PREFIX)
    np.testing.assert_allclose(got, fresh([ActiveAdapter(other, 1.0)], later)[-1], atol=1e-4 * np.abs(got).max())


def test_a_later_invocation_recomputes_what_the_old_one_adapted(engine, fresh):
    """Next turn: the previous invocation is no longer the last, so what followed it must now be the
    base's cache; a cache computed with the adapter there must not be reused past the old start."""
    a1 = make_alora(1)
    first = with_invocation()
    engine.set_adapters([ActiveAdapter(a1, 1.0)])
    engine.next_token_logits(first)
    second = first + [40, 41] + list(INVOCATION) + [7, 8]
    got = engine.next_token_logits(second)
    assert engine._reused == len(PREFIX)
    np.testing.assert_allclose(got, fresh([ActiveAdapter(a1, 1.0)], second)[-1], atol=1e-4 * np.abs(got).max())


def test_an_alora_mix_is_never_fused(engine, tiny_models, make_engine):
    e = make_engine(tiny_models.gguf("llama"), fuse_mixes=True)
    e.set_adapters([ActiveAdapter(make_alora(1), 1.0), ActiveAdapter(make_alora(2), 0.5)])
    assert not e.fuse_now(timeout=5) and e.mode == "separate"


def _scaled_copy(folder, strength, out):
    """The PEFT folder with every lora_B scaled by `strength` (PEFT has no runtime strength), in `out`."""
    import shutil

    from safetensors.numpy import load_file, save_file

    out.mkdir()
    shutil.copy(folder / "adapter_config.json", out / "adapter_config.json")
    tensors = load_file(folder / "adapter_model.safetensors")
    save_file({k: (v * strength if "lora_B" in k else v) for k, v in tensors.items()},
              out / "adapter_model.safetensors")
    assert json.loads((out / "adapter_config.json").read_text())["alora_invocation_tokens"] == list(INVOCATION)
    return out


def test_inspect_and_the_library_show_an_alora(engine, tmp_path):
    from adapters_backend.library import Library
    from adapters_backend.report.inspect import format_report, inspect_adapter

    folder = make_alora(1)
    report = inspect_adapter(folder)
    assert report["alora_invocation_tokens"] == list(INVOCATION)
    assert f"aLoRA: acts only from its invocation tokens {list(INVOCATION)}" in format_report(report)
    engine.set_adapters([ActiveAdapter(folder, 1.0)])
    converted = inspect_adapter(engine.adapters()[0]["gguf"])          # the GGUF reads back the same
    assert converted["alora_invocation_tokens"] == list(INVOCATION)
    entry = Library(tmp_path / "library").install(folder, name="intrinsic")
    assert entry.variant == "lora (aLoRA)"
