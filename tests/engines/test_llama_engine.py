"""The llama.cpp engine on tiny random-weight GGUF models, checked against references computed here:
a base with ΔW = Σ sᵢ·cᵢ·BᵢAᵢ merged into its weights (numpy), and fresh engines loaded with the mix."""
from __future__ import annotations

import ctypes
import subprocess
import sys

import numpy as np
import pytest

from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams, run_to_text
from adapters_backend.errors import AdapterFormatError, BaseModelError, EngineError, IncompatibleAdapterError
from adapters_backend.jobs import JobContext

GREEDY = SamplingParams(max_tokens=24, temperature=0.0, repeat_penalty=1.0)
ASK = [ChatMessage("system", "You are terse."), ChatMessage("user", "Name three colours of the rainbow.")]
PROBE = "The quick brown fox jumps over the lazy dog and"


def logits(engine, text: str = PROBE) -> np.ndarray:
    """Next-token logits after `text`, computed fresh (the engine's KV is reset before and after)."""
    import llama_cpp
    llm = engine.llm
    llm.reset()
    llm.eval(llm.tokenize(text.encode(), add_bos=True))
    out = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).copy()
    llm.reset()
    return out


def reply(engine, messages=ASK, params=GREEDY) -> str:
    return run_to_text(engine, messages, params)


def close_logits(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-4 * float(np.abs(b).max()))


def test_strength_zero_is_the_base_exactly(tiny, make_engine):
    base = make_engine(tiny.base)
    e = make_engine(tiny.base)
    e.set_adapters([ActiveAdapter(tiny.l1_path, 0.0), ActiveAdapter(tiny.l2_path, 0.0)])
    assert e.mode == "base" and len(e.adapters()) == 2          # loaded, but left out of the graph
    assert np.array_equal(logits(e), logits(base))
    assert reply(e) == reply(base)


@pytest.mark.parametrize("strength", [1.0, 0.45, -0.8, 2.0])
def test_one_adapter_equals_the_merged_model(tiny, make_engine, merged, strength):
    e = make_engine(tiny.base)
    e.set_adapters([ActiveAdapter(tiny.l1_path, strength)])
    ref = make_engine(merged([(tiny.l1, strength)]))
    base_logits = logits(make_engine(tiny.base))
    assert not np.allclose(logits(ref), base_logits, atol=1e-2)  # the adapter really changes the model
    close_logits(logits(e), logits(ref))
    assert reply(e) == reply(ref)


def test_two_adapters_add_up(tiny, make_engine, merged):
    mix = [(tiny.l1, 0.7), (tiny.l2, -0.5)]
    e = make_engine(tiny.base)
    e.set_adapters([ActiveAdapter(tiny.l1_path, 0.7), ActiveAdapter(tiny.l2_path, -0.5)])
    ref = make_engine(merged(mix))
    close_logits(logits(e), logits(ref))
    assert reply(e) == reply(ref)
    only_l1 = make_engine(merged([(tiny.l1, 0.7)]))
    assert reply(e) != reply(only_l1)


def test_f16_adapter_is_applied(tiny, make_engine, merged):
    e = make_engine(tiny.base)
    e.set_adapters([ActiveAdapter(tiny.l1_f16_path, 0.9)])
    np.testing.assert_allclose(logits(e), logits(make_engine(merged([(tiny.l1, 0.9)]))), rtol=0.02, atol=0.05)


def _history_then_change(engine, tiny, first: float, second: float):
    engine.set_adapters([ActiveAdapter(tiny.l1_path, first), ActiveAdapter(tiny.l2_path, 0.5)])
    r1 = reply(engine)
    follow_up = [*ASK, ChatMessage("assistant", r1), ChatMessage("user", "And two more?")]
    engine.set_adapters([ActiveAdapter(tiny.l1_path, second), ActiveAdapter(tiny.l2_path, 0.5)])
    return follow_up, reply(engine, follow_up)


def test_strength_change_between_generations_equals_a_fresh_load(tiny, make_engine):
    e = make_engine(tiny.base)
    follow_up, changed = _history_then_change(e, tiny, 0.3, 1.4)
    fresh = make_engine(tiny.base)
    fresh.set_adapters([ActiveAdapter(tiny.l1_path, 1.4), ActiveAdapter(tiny.l2_path, 0.5)])
    assert changed == reply(fresh, follow_up)


def test_without_the_mix_key_the_stale_answer_shows(tiny, make_engine, monkeypatch):
    """The test above fails when the engine reuses the KV cache across a strength change (the bug it
    guards against: llama-cpp-python reuses the prompt prefix computed under the old adapters): here
    every mix gets the same KV key."""
    from adapters_backend.engines import llama_cpp_engine

    monkeypatch.setattr(llama_cpp_engine, "mix_key", lambda adapters: "one key for every mix")
    e = make_engine(tiny.base)
    follow_up, changed = _history_then_change(e, tiny, 0.3, 1.4)
    fresh = make_engine(tiny.base)
    fresh.set_adapters([ActiveAdapter(tiny.l1_path, 1.4), ActiveAdapter(tiny.l2_path, 0.5)])
    assert changed != reply(fresh, follow_up)


def test_per_layer_strengths(tiny, make_engine, merged):
    e = make_engine(tiny.base)
    e.set_adapters([ActiveAdapter(tiny.l2_path, 0.8, layer_scales=[(0, 0, 0.0), (1, 1, 2.0)])])
    ref = make_engine(merged([(tiny.l2, 0.8)], layer_factors={0: 0.0, 1: 2.0}))
    close_logits(logits(e), logits(ref))
    assert reply(e) == reply(ref)
    # The strength slider still works on top of the layer factors, with no new file.
    gguf = e.adapters()[0]["gguf"]
    e.set_adapters([ActiveAdapter(tiny.l2_path, -0.4, layer_scales=[(0, 0, 0.0), (1, 1, 2.0)])])
    assert e.adapters()[0]["gguf"] == gguf
    close_logits(logits(e), logits(make_engine(merged([(tiny.l2, -0.4)], layer_factors={0: 0.0, 1: 2.0}))))


def test_fused_mix_equals_separate_adapters_and_slider_moves_apply_at_once(tiny, make_engine, merged):
    e = make_engine(tiny.base, fuse_mixes=True)
    mix = [ActiveAdapter(tiny.l1_path, 0.7), ActiveAdapter(tiny.l2_path, -0.5), ActiveAdapter(tiny.l3_path, 1.2)]
    e.set_adapters(mix)
    assert e.mode == "separate"
    separate = logits(e)
    assert e.fuse_now() and e.mode == "fused"
    assert all(a["running"] == "fused" for a in e.adapters())
    ref = logits(make_engine(merged([(tiny.l1, 0.7), (tiny.l2, -0.5), (tiny.l3, 1.2)])))
    close_logits(logits(e), separate)
    close_logits(logits(e), ref)
    # A moved slider: the very next evaluation uses separate adapters at the new strengths.
    e.set_adapters([ActiveAdapter(tiny.l1_path, 0.7), ActiveAdapter(tiny.l2_path, 0.25),
                    ActiveAdapter(tiny.l3_path, 1.2)])
    assert e.mode == "separate"
    close_logits(logits(e), logits(make_engine(merged([(tiny.l1, 0.7), (tiny.l2, 0.25), (tiny.l3, 1.2)]))))


def test_a_settled_mix_is_fused_in_the_background(tiny, make_engine):
    e = make_engine(tiny.base, fuse_mixes=True)
    e.set_adapters([ActiveAdapter(tiny.l1_path, 0.6), ActiveAdapter(tiny.l2_path, 0.4)])
    first = reply(e)                                   # runs separate, then asks for the fused file
    assert e.mode == "separate"
    assert e.wait_for_fusion(timeout=30)
    second = reply(e)
    assert e.mode == "fused"
    assert second == first
    loaded_before = len(e._handles.loaded)
    e.set_adapters([ActiveAdapter(tiny.l1_path, 0.6)])  # one adapter: nothing to fuse, fused file freed
    assert e.mode == "separate" and len(e._handles.loaded) == loaded_before - 2


def test_cancel_stops_before_the_next_token(tiny, make_engine):
    e = make_engine(tiny.base)
    ctx = JobContext()
    chunks = []
    for chunk in e.generate(ASK, SamplingParams(max_tokens=200, temperature=0.8, seed=3), ctx):
        chunks.append(chunk)
        if len(chunks) == 3:
            ctx.cancel()                       # as the GUI's Stop button does, between two tokens
    assert [c.finished for c in chunks] == [False, False, False, True]
    assert chunks[-1].finish_reason == "cancelled" and chunks[-1].completion_tokens == 3
    assert reply(e) == reply(make_engine(tiny.base))   # the engine is fine afterwards


class CancelDuringPrompt(JobContext):
    """Cancelled from the moment llama.cpp's abort callback first asks (i.e. inside the prompt's decode)."""

    def __init__(self):
        super().__init__()
        self.asked = 0

    def cancelled(self) -> bool:
        self.asked += 1
        return self.asked > 1 or super().cancelled()


def test_cancel_interrupts_a_long_prompt(tiny, make_engine):
    e = make_engine(tiny.base)
    long_ask = [ChatMessage("user", " ".join(["lorem ipsum dolor sit amet"] * 60))]
    ctx = CancelDuringPrompt()
    chunks = list(e.generate(long_ask, GREEDY, ctx))
    assert len(chunks) == 1 and chunks[0].finish_reason == "cancelled" and chunks[0].completion_tokens == 0
    assert ctx.asked >= 2                     # the abort callback ran inside llama_decode
    assert reply(e, long_ask) == reply(make_engine(tiny.base), long_ask)


def test_sampling_seed_stats_and_limits(tiny, make_engine):
    e = make_engine(tiny.base)
    p = SamplingParams(max_tokens=12, temperature=0.9, top_k=50, top_p=0.9, repeat_penalty=1.1, seed=11)
    a = list(e.generate(ASK, p))
    assert reply(e, ASK, p) == "".join(c.text for c in a)
    other = reply(e, ASK, SamplingParams(max_tokens=12, temperature=0.9, seed=12))
    assert other != reply(e, ASK, p)
    last = a[-1]
    assert last.finished and last.finish_reason == "length" and last.completion_tokens == 12
    assert last.prompt_tokens > 5 and last.tokens_per_second > 0 and last.prompt_seconds > 0
    assert sum(c.n_tokens for c in a) == 12 and all(c.token_id is not None for c in a[:-1])
    with pytest.raises(EngineError, match="does not fit the context"):
        e.generate([ChatMessage("user", "word " * 600)], p)


def test_a_context_that_is_not_a_multiple_of_256_holds_what_was_asked_for(tiny, make_engine):
    """llama.cpp rounds a context of 300 up to 512, llama-cpp-python's token arrays keep 300: a prompt or
    an answer past 300 tokens was a numpy error inside llama-cpp-python instead of the engine's limits."""
    e = make_engine(tiny.base, n_ctx=300)
    assert e.llm.n_ctx() > 300 and e.info["n_ctx"] == 300
    with pytest.raises(EngineError, match="does not fit the context of 300 tokens"):
        e.generate([ChatMessage("user", "word " * 305)], SamplingParams(max_tokens=4))
    ask = [ChatMessage("user", "word " * 272)]
    n = len(e.prompt_tokens(ask))
    assert 280 < n < 299
    chunks = list(e.generate(ask, SamplingParams(max_tokens=40, temperature=0.0, repeat_penalty=1.0)))
    assert chunks[-1].finish_reason == "length" and chunks[-1].completion_tokens == 300 - n


def test_wrong_adapters_are_refused_and_the_mix_stays(tiny, make_engine):
    e = make_engine(tiny.base)
    e.set_adapters([ActiveAdapter(tiny.l1_path, 0.7)])
    before = reply(e)
    cases = [(tiny.qwen_path, IncompatibleAdapterError, "made for Qwen2 \\('qwen2'\\) models, the base is Llama"),
             (tiny.wide_path, IncompatibleAdapterError, "hidden size"),
             (tiny.deep_path, IncompatibleAdapterError, "layer count"),
             (tiny.truncated_path, AdapterFormatError, "truncated"),
             (tiny.junk_path, AdapterFormatError, "not a readable GGUF|could not load"),
             (tiny.text_path, AdapterFormatError, "not a GGUF file"),
             (tiny.base, AdapterFormatError, "a model, not a LoRA adapter"),
             (tiny.dir / "missing.gguf", AdapterFormatError, "not found")]
    for path, error, words in cases:
        with pytest.raises(error, match=words):
            e.set_adapters([ActiveAdapter(tiny.l1_path, 0.7), ActiveAdapter(path, 1.0)])
        assert [a["name"] for a in e.adapters()] == ["l1"]
        assert reply(e) == before
    assert len(e._handles.loaded) == 1                  # nothing half-loaded left behind
    with pytest.raises(EngineError, match="outside"):
        e.set_adapters([ActiveAdapter(tiny.l1_path, 2.5)])


def test_a_converted_adapter_that_does_not_fit_is_named_as_the_user_calls_it(tiny, make_engine, tmp_path):
    """A PEFT adapter goes through the converter, which names files by path: the engine's refusal
    names the adapter by its display name instead (the app shows it as it is)."""
    from fixtures.small_adapters import write_peft
    folder = write_peft(tmp_path / "adapters" / "wide-peft", hidden=96)
    e = make_engine(tiny.base)
    with pytest.raises(IncompatibleAdapterError) as caught:
        e.set_adapters([ActiveAdapter(folder, 1.0, name="my style")])
    message = str(caught.value)
    assert message.startswith("my style does not fit ") and "hidden size" in message
    assert str(tmp_path) not in message and caught.value.report is not None


def test_bad_model_files_give_clear_errors(tiny, make_engine, tmp_path):
    import engine_models as em

    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine

    odd = em.write_base(tmp_path / "odd.gguf", tiny.weights, tiny.vocab, arch="frobnicator")
    truncated = tmp_path / "truncated-base.gguf"
    truncated.write_bytes(tiny.base.read_bytes()[:3_000_000])
    e = LlamaCppEngine(n_ctx=256, n_threads=1)
    try:
        for path, words in [(tmp_path / "nope.gguf", "not found"), (tiny.text_path, "not a GGUF file"),
                            (tiny.junk_path, "not a readable GGUF|could not load"), (tiny.l1_path, "LoRA adapter, not a model"),
                            (odd, "does not support the model architecture 'frobnicator'"),
                            (truncated, "damaged or incomplete")]:
            with pytest.raises(BaseModelError, match=words):
                e.load(path)
            assert not e.loaded
        e.load(tiny.base)                           # and it still works afterwards
        assert reply(e) == reply(make_engine(tiny.base))
    finally:
        e.close()


def test_model_without_chat_template_uses_the_fallback(tiny, make_engine, tmp_path):
    import engine_models as em

    path = em.write_base(tmp_path / "plain.gguf", tiny.weights, tiny.vocab, chat_template=None)
    e = make_engine(path)
    assert e.info["chat_template"] == "fallback" and "no chat template" in e.info["note"]
    assert reply(e).strip()
    assert make_engine(tiny.base).info["chat_template"] == "gguf"


def test_load_reports_progress_and_can_be_cancelled(tiny):
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    from adapters_backend.errors import JobCancelled

    seen = []
    e = LlamaCppEngine(n_ctx=256, n_threads=1)
    try:
        info = e.load(tiny.base, JobContext(on_progress=lambda d, t, m: seen.append(d)))
        assert seen and seen[-1] == pytest.approx(1.0)
        assert info["n_layers"] == 2 and info["architecture"] == "llama" and info["n_ctx"] == 256
        ctx = JobContext(on_progress=lambda d, t, m: ctx.cancel())
        with pytest.raises(JobCancelled):
            e.load(tiny.base, ctx)
        assert not e.loaded
    finally:
        e.close()


def _settled_rss(proc) -> int:
    """RSS after returning freed heap memory to the OS (glibc keeps freed big blocks otherwise, which
    shows as noise of several MB that is not a leak)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
    return proc.memory_info().rss


def test_memory_stays_flat_over_200_cycles(tiny, make_engine):
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    e = make_engine(tiny.base, fuse_mixes=True)
    p = SamplingParams(max_tokens=4, temperature=0.0)

    def cycle(i):
        layers = [(0, 0, 0.5)] if i % 10 == 0 else None
        e.set_adapters([ActiveAdapter(tiny.big_path, 0.5, layer_scales=layers)])          # load (cold)
        e.set_adapters([ActiveAdapter(tiny.big_path, 0.9, layer_scales=layers),            # switch (hot)
                        ActiveAdapter(tiny.l1_path, 0.3)])
        run_to_text(e, ASK, p)                                                               # generate
        ctx = JobContext()
        for _chunk in e.generate(ASK, SamplingParams(max_tokens=50), ctx):                  # cancel
            ctx.cancel()
        e.set_adapters([])                                                                   # free

    def run(cycles, first):
        samples = []
        for i in range(first, first + cycles):
            cycle(i)
            if i % 5 == 4:
                samples.append(_settled_rss(proc))
        return min(samples[-4:])                 # the floor of the last 20 cycles: noise rides above it

    start = run(40, 0)
    end = run(200, 40)
    grown = end - start
    assert not e._handles.loaded and e.mode == "base"
    # A leaked load of the big adapter costs ~2.3 MB: 200 of them would be ~460 MB.
    assert grown < 0.03 * start, f"RSS grew by {grown / 1e6:.1f} MB from {start / 1e6:.0f} MB"


def test_capabilities(tiny, make_engine):
    caps = make_engine(tiny.base).capabilities
    assert caps.hot_switch and caps.multi_adapter and caps.negative_strength and caps.per_layer_strength
    assert caps.per_layer and caps.strength_range == (-2.0, 2.0) and not caps.merge


def test_null_adapter_pointer_is_falsy():
    """The pitfall the engine guards against: ctypes returns NULL as a falsy pointer, not None."""
    null = ctypes.POINTER(ctypes.c_void_p)()
    assert null is not None and not null


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS is how the test limits memory")
def test_not_enough_memory_is_a_clear_error(tiny):
    """A context too big for the memory the process may use (capped at 3 GB here) fails cleanly."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))\n"
        "from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine\n"
        "from adapters_backend.errors import BaseModelError\n"
        "try:\n"
        "    LlamaCppEngine(n_ctx=8_000_000, n_threads=1).load(sys.argv[1])\n"
        "except BaseModelError as exc:\n"
        "    print(exc)\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(tiny.long_base)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "not enough memory" in run.stdout and "--ctx" in run.stdout
