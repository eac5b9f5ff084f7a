"""The PyTorch engine's KV cache across mixes (torch_kv.py) and activated LoRAs, against fresh
evaluations and PEFT's own aLoRA forward on the tiny Llama: a cache is reused only under its own mix,
every reuse gives the logits of a fresh evaluation (≤ 1e-4 × max|logit|, f32), and an aLoRA acts
from the last occurrence of its invocation tokens on with the cache before it shared with the base."""
from __future__ import annotations

import numpy as np
import pytest
from fixtures.tiny_alora import INVOCATION, OTHER_INVOCATION, make_alora, peft_logits

from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams
from adapters_backend.jobs import JobContext

pytest.importorskip("torch")
pytest.importorskip("peft")
PREFIX = [1, 17, 5, 8, 9, 11, 64, 23, 12, 19, 77, 31, 18, 6, 29, 13, 21, 40, 41, 44]


def rng_tokens(n, seed):
    rng = np.random.default_rng(seed)
    return [1] + [int(t) for t in rng.integers(3, 250, n - 1)]


def assert_exact(got, want):
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), np.abs(got - want).max()


@pytest.fixture
def engine():
    from fixtures.tiny_gguf import tiny_hf_model

    from adapters_backend.engines.torch_engine import TorchEngine

    made = []

    def make(budget=64 << 20):
        e = TorchEngine(device="cpu", dtype="float32", kv_snapshot_budget=budget)
        e.load(tiny_hf_model("llama"))
        made.append(e)
        return e

    yield make
    for e in made:
        e.close()


def fresh(engine_factory):
    ref = engine_factory(budget=0)

    def logits(mix, toks):
        ref.set_adapters(mix)
        ref.forget_kv()
        return ref.next_token_logits(toks)

    return logits


def test_a_mix_comes_back_from_its_snapshot_exactly(engine, tiny_adapters):
    e, ref = engine(), fresh(engine)
    lora = str(tiny_adapters.make("llama", "lora"))
    t1, t2 = rng_tokens(60, 1), rng_tokens(30, 2)[1:]
    a, b = [ActiveAdapter(lora, 0.8)], [ActiveAdapter(lora, -0.6)]
    e.set_adapters(a)
    e.next_token_logits(t1)
    e.set_adapters(b)
    assert_exact(e.next_token_logits(t1), ref(b, t1))
    assert e._kv.last_restored == 0                           # never the other mix's cache
    e.set_adapters(a)
    got = e.next_token_logits(t1 + t2)
    assert e._kv.last_restored == len(t1)
    assert_exact(got, ref(a, t1 + t2))
    edited = t1[:20] + t2
    e.set_adapters(b)
    got = e.next_token_logits(edited)
    assert e._reused == 20                                    # an earlier change: only the prefix before it
    assert_exact(got, ref(b, edited))
    stats = e.kv_stats()
    assert stats.entries >= 2 and stats.nbytes <= stats.budget and stats.hits >= 1


def test_chat_turns_alternating_mixes_answer_as_a_fresh_engine_does(engine, tiny_adapters):
    e, ref_engine = engine(), engine(budget=0)
    lora, loha = str(tiny_adapters.make("llama", "lora")), str(tiny_adapters.make("llama", "loha"))
    mixes = [[ActiveAdapter(lora, 0.9)], [ActiveAdapter(loha, 0.7), ActiveAdapter(lora, -0.3)]]
    p = SamplingParams(max_tokens=8, temperature=0.0, repeat_penalty=1.0)
    chat = [ChatMessage("system", "lora deck adapter model " * 5), ChatMessage("user", "hello world")]
    for turn in range(4):
        e.set_adapters(mixes[turn % 2])
        chunks = list(e.generate(chat, p))
        ref_engine.set_adapters(mixes[turn % 2])
        ref_engine.forget_kv()
        assert "".join(c.text for c in chunks) == "".join(c.text for c in ref_engine.generate(chat, p))
        if turn >= 2:
            assert chunks[-1].prompt_cached >= chunks[-1].prompt_tokens // 2
        chat += [ChatMessage("assistant", "".join(c.text for c in chunks)), ChatMessage("user", "and then")]


def test_prewarm_reads_ahead_and_stops_when_asked(engine, tiny_adapters):
    e, ref = engine(), fresh(engine)
    mix = [ActiveAdapter(str(tiny_adapters.make("llama", "lora")), 0.5)]
    e.set_adapters(mix)
    chat = [ChatMessage("system", "the quick brown fox " * 14), ChatMessage("user", "hello")]
    ctx = JobContext(on_progress=lambda d, t, m: ctx.cancel())
    result = e.prewarm(chat, ctx)
    assert not result["complete"] and 0 < e._kv.n_live < result["tokens"]
    read = e._kv.n_live
    toks = e.prompt_tokens([*chat, ChatMessage("assistant", "hi"), ChatMessage("user", "more")])
    got = e.next_token_logits(toks)
    assert e._reused == read                                  # continued from where the pre-warm stopped
    assert_exact(got, ref(mix, toks))
    assert e.prewarm(chat)["complete"] and e.kv_stats().entries >= 1


@pytest.mark.parametrize("strength", [1.0, -0.7])
def test_an_alora_acts_from_its_invocation_on_as_peft_does(engine, strength):
    e = engine()
    folder = make_alora(1)
    toks = PREFIX + list(INVOCATION) + [7, 201, 33, 64, 14]
    e.set_adapters([ActiveAdapter(str(folder), strength)])
    got = e.eval_logits(toks)
    if strength == 1.0:
        ref = peft_logits(folder, toks)
        assert np.abs(got - ref).max() <= 1e-4, np.abs(got - ref).max()
    base = peft_logits(None, toks)
    assert np.abs(got[:len(PREFIX)] - base[:len(PREFIX)]).max() <= 1e-4        # the base before it
    assert np.abs(got[len(PREFIX):] - base[len(PREFIX):]).max() > 1e-2         # the adapter from it on
    none = PREFIX + [7, 201]                                  # no invocation: the adapter is off
    assert np.abs(e.eval_logits(none) - peft_logits(None, none)).max() <= 1e-4


def test_switching_aloras_shares_the_base_prefix_and_stays_exact(engine):
    e, ref = engine(), fresh(engine)
    a1, a2, other = make_alora(1), make_alora(2), make_alora(3, OTHER_INVOCATION)
    toks = PREFIX + list(INVOCATION) + [7, 201, 33, 64, 14]
    e.set_adapters([ActiveAdapter(str(a1), 1.0)])
    assert_exact(e.next_token_logits(toks), peft_logits(a1, toks)[-1])
    e.set_adapters([ActiveAdapter(str(a2), 1.0)])
    got = e.next_token_logits(toks)
    assert e._reused == len(PREFIX)
    assert_exact(got, ref([ActiveAdapter(str(a2), 1.0)], toks))
    assert_exact(got, peft_logits(a2, toks)[-1])
    later = toks + list(OTHER_INVOCATION) + [9, 8]
    e.set_adapters([ActiveAdapter(str(other), 1.0)])
    got = e.next_token_logits(later)
    assert e._reused >= len(PREFIX)
    assert_exact(got, peft_logits(other, later)[-1])
    e.set_adapters([ActiveAdapter(str(a1), 1.0)])
    second = toks + [40, 41] + list(INVOCATION) + [7, 8]      # a later invocation of the same aLoRA
    got = e.next_token_logits(second)
    assert e._reused <= len(second) - 1
    assert_exact(got, peft_logits(a1, second)[-1])


def test_a_snapshot_copy_shares_dynamic_tensors_and_stays_apart_from_the_live_cache():
    """Dynamic layers are copied by reference (they never write into their tensors), anything else
    deep; either way the copy does not change when the live cache grows or is cropped."""
    import torch
    from transformers import DynamicCache, StaticCache

    from adapters_backend.engines.torch_kv import cache_nbytes, crop, detached_copy

    live = DynamicCache()
    for layer in range(2):
        live.update(torch.randn(1, 2, 6, 4), torch.randn(1, 2, 6, 4), layer)
    snap = detached_copy(live)
    assert snap.layers[0].keys is live.layers[0].keys and snap.layers is not live.layers
    want = snap.layers[1].values.clone()
    for layer in range(2):
        live.update(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), layer)
    assert crop(live, 4) and live.get_seq_length() == 4 and snap.get_seq_length() == 6
    assert torch.equal(snap.layers[1].values, want)
    assert cache_nbytes(live) == 2 * 2 * (1 * 2 * 9 * 4) * 4          # a cropped view holds its whole storage

    from fixtures.tiny_gguf import tiny_hf_model
    from transformers import AutoConfig
    static = StaticCache(config=AutoConfig.from_pretrained(tiny_hf_model("llama")), max_cache_len=8)
    static.update(torch.ones(1, 2, 1, 16), torch.ones(1, 2, 1, 16), 0, {"cache_position": torch.tensor([0])})
    copied = detached_copy(static)
    assert copied.layers[0].keys is not static.layers[0].keys
    static.update(torch.full((1, 2, 1, 16), 5.0), torch.ones(1, 2, 1, 16), 0, {"cache_position": torch.tensor([0])})
    assert copied.layers[0].keys[0, 0, 0, 0] == 1.0                  # written in place: the copy is its own


def test_a_prewarm_stopped_after_its_last_chunk_makes_no_snapshot(engine, tiny_adapters):
    """A Send arriving as the pre-warm reads its last chunk does not wait for a snapshot copy."""
    from adapters_backend.engines.torch_engine import PREWARM_CHUNK
    e, ref = engine(), fresh(engine)
    mix = [ActiveAdapter(str(tiny_adapters.make("llama", "lora")), 0.5)]
    e.set_adapters(mix)
    chat = [ChatMessage("system", "the quick brown fox " * 11), ChatMessage("user", "hello")]
    n_chunks = -(-len(e.prompt_tokens(chat, add_generation_prompt=False)) // PREWARM_CHUNK)
    assert n_chunks >= 2
    reports = []
    ctx = JobContext(on_progress=lambda d, t, m: (reports.append(d), len(reports) >= n_chunks and ctx.cancel()))
    result = e.prewarm(chat, ctx)
    assert (result["complete"], e._kv.n_live, e.kv_stats().entries) == (True, result["tokens"], 0)
    toks = e.prompt_tokens(chat)
    assert_exact(e.next_token_logits(toks), ref(mix, toks))


def test_a_chat_longer_than_the_context_keeps_answering_exactly(tiny_adapters):
    """engines.context_window on this engine: every turn of a chat four times its context is answered,
    each answer is a fresh engine's on the same window, and after the pre-warm only the question is read."""
    from fixtures.tiny_gguf import tiny_hf_model

    from adapters_backend.engines.context_window import fit_engine_window
    from adapters_backend.engines.torch_engine import TorchEngine

    n_ctx = 160
    e = TorchEngine(device="cpu", dtype="float32", n_ctx=n_ctx, kv_snapshot_budget=64 << 20)
    ref = TorchEngine(device="cpu", dtype="float32", n_ctx=n_ctx, kv_snapshot_budget=0)
    try:
        for engine in (e, ref):
            engine.load(tiny_hf_model("llama"))
            engine.set_adapters([ActiveAdapter(str(tiny_adapters.make("llama", "lora")), 0.8)])
        assert e.info["n_ctx"] == n_ctx
        p = SamplingParams(max_tokens=8, temperature=0.0, repeat_penalty=1.0)
        history = [ChatMessage("system", "lora deck")]
        left_out = []
        for i in range(12):
            e.prewarm(fit_engine_window(e, history, n_ctx).messages)
            question = ChatMessage("user", f"hello world number {i} the quick brown fox")
            w = fit_engine_window(e, [*history, question], n_ctx)
            chunks = list(e.generate(w.messages, p))
            answer = "".join(c.text for c in chunks)
            ref.forget_kv()
            assert answer == "".join(c.text for c in ref.generate(w.messages, p)), i
            asked = len(e.prompt_tokens(w.messages)) - len(e.prompt_tokens(w.messages[:-1], add_generation_prompt=False))
            assert chunks[-1].prompt_tokens - chunks[-1].prompt_cached <= asked + 1, i
            left_out.append(w.left_out)
            history += [question, ChatMessage("assistant", answer)]
        assert left_out[0] == 0 and left_out == sorted(left_out) and len(set(left_out)) >= 3
    finally:
        e.close()
        ref.close()


def test_the_automatic_budget_fits_the_device_the_model_runs_on(engine, monkeypatch):
    """Snapshots live where the model does (a GPU's memory on CUDA): the automatic budget is half of
    what the model's weights and a full context's cache leave of that device's working share."""
    from adapters_backend.engines import torch_engine
    from adapters_backend.engines.kv_snapshots import auto_budget
    from adapters_backend.machine import MEMORY_SHARE

    e = engine(budget=None)
    weights = sum(t.numel() * t.element_size() for t in (*e.model.parameters(), *e.model.buffers()))
    used = weights + e.info["n_ctx"] * e.kv_bytes_per_token()
    leaves_10_mib = int((used + (10 << 20)) / MEMORY_SHARE) + 1
    monkeypatch.setattr(torch_engine, "device_memory", lambda device: leaves_10_mib)
    tight = engine(budget=None)
    assert tight.kv_stats().budget == pytest.approx(5 << 20, abs=4)
    assert tight.kv_stats().budget < auto_budget(e.kv_bytes_per_token(), e.info["n_ctx"]) == e.kv_stats().budget
    monkeypatch.setattr(torch_engine, "device_memory", lambda device: used)
    assert engine(budget=None).kv_stats() is None


def test_a_message_longer_than_the_context_is_refused_saying_to_shorten_it():
    """A new chat would not help a single message over the context: the error says to shorten it, at
    once (before any token), as the llama.cpp engine's does."""
    from fixtures.tiny_gguf import tiny_hf_model

    from adapters_backend.engines.torch_engine import TorchEngine
    from adapters_backend.errors import EngineError

    e = TorchEngine(device="cpu", dtype="float32", n_ctx=64, kv_snapshot_budget=0)
    try:
        e.load(tiny_hf_model("llama"))
        with pytest.raises(EngineError, match=r"your message alone \(\d+ tokens\) does not fit the context of 64 "
                                              r"tokens; shorten it$"):
            e.generate([ChatMessage("system", "lora deck"), ChatMessage("user", "the quick brown fox " * 40)])
        chat = [ChatMessage("user", "the quick brown fox " * 20), ChatMessage("assistant", "jumps " * 20),
                ChatMessage("user", "and?")]
        with pytest.raises(EngineError, match=r"the conversation \(\d+ tokens\) does not fit the context of 64 "
                                              r"tokens; start a new chat$"):
            e.generate(chat)
    finally:
        e.close()
