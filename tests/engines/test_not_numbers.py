"""Logits that are not numbers. An adapter GGUF holding a NaN or an infinity (what a training run that
overflowed leaves) is refused by file and tensor before llama.cpp gets it; llama.cpp ran it and answered
with one meaningless token after another up to the length limit. Values that are numbers but overflow
the model (or a damaged model) stop the answer at the token where the logits stop being numbers, with
the mix in the message, and nothing of it is reused afterwards."""
from __future__ import annotations

import warnings

import engine_models as em
import numpy as np
import pytest

from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams, run_to_text
from adapters_backend.errors import AdapterFormatError, EngineError

GREEDY = SamplingParams(max_tokens=8, temperature=0.0, repeat_penalty=1.0)
ASK = [ChatMessage("user", "Name three colours of the rainbow.")]


@pytest.mark.parametrize(("value", "dtype"), [(np.nan, np.float32), (np.inf, np.float16), (-np.inf, np.float32)])
def test_an_adapter_holding_values_that_are_not_numbers_is_refused_by_name(tiny, make_engine, tmp_path, value, dtype):
    bad = em.Lora(dict(tiny.l1.pairs), alpha=tiny.l1.alpha)
    a, b = bad.pairs["blk.1.attn_v.weight"]
    b = b.copy()
    b[3, 1] = value
    bad.pairs["blk.1.attn_v.weight"] = (a, b)
    path = em.write_lora(tmp_path / "overflowed.gguf", bad, dtype=dtype)
    engine = make_engine(tiny.base)
    engine.set_adapters([ActiveAdapter(tiny.l2_path, 0.5)])
    before = run_to_text(engine, ASK, GREEDY)
    with pytest.raises(AdapterFormatError) as err:
        engine.set_adapters([ActiveAdapter(path, 1.0)])
    assert str(path) in str(err.value) and "'blk.1.attn_v.weight.lora_b' holds NaN or infinite values" in str(err.value)
    assert [a["path"] for a in engine.adapters()] == [str(tiny.l2_path)]
    assert run_to_text(engine, ASK, GREEDY) == before


def test_an_adapter_that_overflows_the_model_stops_the_answer_with_the_mix(tiny, make_engine, tmp_path):
    huge = em.write_lora(tmp_path / "huge.gguf", em.make_lora(tiny.weights, rank=4, seed=9, gain=1e30))
    engine = make_engine(tiny.base)
    plain = run_to_text(engine, ASK, GREEDY)
    engine.set_adapters([ActiveAdapter(huge, 0.75, name="loud"), ActiveAdapter(tiny.l2_path, 0.5)])
    chunks = []
    with pytest.raises(EngineError) as err:
        for chunk in engine.generate(ASK, GREEDY):
            chunks.append(chunk)
    assert chunks == []                                   # not one token of nonsense was shown
    msg = str(err.value)
    assert "stopped being numbers (NaN or infinite) while reading the conversation" in msg
    assert "(loud ×0.75, l2 ×0.5)" in msg and "lower the strengths" in msg
    # At strength 0 the same adapter changes nothing, and the cache of the failed mix is not reused.
    engine.set_adapters([ActiveAdapter(huge, 0.0)])
    assert run_to_text(engine, ASK, GREEDY) == plain


def test_a_model_whose_output_stops_being_numbers_mid_answer_stops_there(tiny, make_engine, tmp_path):
    engine = make_engine(tiny.base)
    answer = [c for c in engine.generate(ASK, GREEDY) if not c.finished]
    assert len(answer) >= 4
    prompt = set(engine.prompt_tokens(ASK))
    # The third token of the answer, when the model reads it back, gives NaN everywhere: its embedding row.
    k = next(i for i in range(2, len(answer)) if answer[i].token_id not in prompt and
             answer[i].token_id not in {c.token_id for c in answer[:i]})
    weights = dict(tiny.weights)
    weights["token_embd.weight"] = weights["token_embd.weight"].copy()
    weights["token_embd.weight"][answer[k].token_id] = np.nan
    damaged = make_engine(em.write_base(tmp_path / "damaged.gguf", weights, tiny.vocab))
    got = []
    with pytest.raises(EngineError) as err:
        for chunk in damaged.generate(ASK, GREEDY):
            got.append(chunk)
    assert [c.token_id for c in got] == [c.token_id for c in answer[:k + 1]]    # up to the token read back
    assert f"after {k + 1} tokens of the answer: the model file is damaged" in str(err.value)


def _skewed_f16(tiny, path):
    """l2 with B scaled up and A down by 3e4, stored in f16: every B fits float16 (|B| < 65,504), but B
    times 2 does not. Returns (file, the Lora as read back from it)."""
    skewed = em.Lora({k: (a / 3e4, b * 3e4) for k, (a, b) in tiny.l2.pairs.items()})
    assert 32752 < max(np.abs(b).max() for _a, b in skewed.pairs.values()) < 65504
    em.write_lora(path, skewed, dtype=np.float16)
    stored = em.Lora({k: (a.astype(np.float16).astype(np.float32), b.astype(np.float16).astype(np.float32))
                      for k, (a, b) in skewed.pairs.items()})
    return path, stored


def test_per_layer_factors_past_float16_are_written_in_f32_and_stay_exact(tiny, make_engine, merged, tmp_path):
    """A 16-bit adapter's per-layer file was written in f16 with B times its layer factor: infinities
    where that passed 65,504, so the answer stopped (NaN). Such a file is written in f32 instead."""
    from test_llama_engine import close_logits, logits
    path, stored = _skewed_f16(tiny, tmp_path / "skewed.gguf")
    e = make_engine(tiny.base)
    e.set_adapters([ActiveAdapter(path, 1.0, layer_scales=[(0, 0, 2.0), (1, 1, 0.5)])])
    assert run_to_text(e, ASK, GREEDY)                                 # no error: the logits are numbers
    close_logits(logits(e), logits(make_engine(merged([(stored, 1.0)], layer_factors={0: 2.0, 1: 0.5}))))


def test_a_mix_that_would_overflow_its_fused_file_runs_as_separate_adapters(tiny, make_engine, tmp_path):
    """Fusing folds each strength into B, in f16 for a 16-bit adapter: past 65,504 the fused file would
    hold infinities. The build is refused and the mix keeps running as separate adapters (the same
    logits as an engine that never fuses; llama.cpp's f16 product differs from an f32 merge by ~1e-3)."""
    from test_llama_engine import logits
    path, _stored = _skewed_f16(tiny, tmp_path / "skewed.gguf")
    mix = [ActiveAdapter(path, 2.0), ActiveAdapter(tiny.l1_path, 0.5)]
    e = make_engine(tiny.base, fuse_mixes=True)
    e.set_adapters(mix)
    with warnings.catch_warnings():     # as in the app: numpy's overflow warning is not an error there
        warnings.simplefilter("ignore", RuntimeWarning)
        assert not e.fuse_now() and e.mode == "separate"
    assert run_to_text(e, ASK, GREEDY)
    separate = make_engine(tiny.base)
    separate.set_adapters(mix)
    got = logits(e)
    assert np.isfinite(got).all() and np.array_equal(got, logits(separate))


def test_an_adapter_read_through_once_is_not_read_again_until_it_changes(tiny, make_engine, tmp_path, monkeypatch):
    """The values check reads the whole file (0.13 s for 134 MB): it is remembered in the cache folder
    by the file's path, size and time, so a later start does not read it again; a changed file is."""
    from adapters_backend.engines import adapter_files
    path = em.write_lora(tmp_path / "fine.gguf", tiny.l1)
    make_engine(tiny.base).set_adapters([ActiveAdapter(path, 1.0)])
    assert any(str(path.resolve()) in e for e in adapter_files.ALL_NUMBERS.saved())
    monkeypatch.setattr(adapter_files.ALL_NUMBERS, "here", set())          # as in a process started afresh
    scanned = []
    real = adapter_files.first_nonfinite
    monkeypatch.setattr(adapter_files, "first_nonfinite", lambda p: scanned.append(p) or real(p))
    make_engine(tiny.base).set_adapters([ActiveAdapter(path, 1.0)])
    assert scanned == []
    bad = em.Lora(dict(tiny.l1.pairs), alpha=tiny.l1.alpha)
    a, b = bad.pairs["blk.0.attn_q.weight"]
    bad.pairs["blk.0.attn_q.weight"] = (a, np.where(b == b.max(), np.nan, b))
    em.write_lora(path, bad)                                                # the same name, new contents
    with pytest.raises(AdapterFormatError, match="holds NaN or infinite values"):
        make_engine(tiny.base).set_adapters([ActiveAdapter(path, 1.0)])
    assert scanned == [path]
