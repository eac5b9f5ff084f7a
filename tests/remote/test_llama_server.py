"""The llama-server engine against a real llama.cpp `llama-server` (built from the vendored sources,
kept in the user's cache: tests/fixtures/llama_server_bin.py), serving the demo model with the three
demo LoRA GGUFs."""
from __future__ import annotations

import pytest
from fixtures.llama_server import _free_port, llama_server  # noqa: F401  (pytest fixture)

from adapters_backend import demo
from adapters_backend.engines import create_engine
from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams
from adapters_backend.errors import EngineError
from adapters_backend.jobs import JobContext

# The first run may build llama-server (~2 min on 2 cores; the whole tree where that fails) inside the fixture.
pytestmark = pytest.mark.timeout(2400)

GREEDY = SamplingParams(max_tokens=48, temperature=0.0, seed=1, repeat_penalty=1.0)
QUESTION = [ChatMessage("user", "What is the capital of France?")]


@pytest.fixture(scope="module")
def server(llama_server):
    return llama_server


@pytest.fixture
def engine(server):
    url, _loras = server
    e = create_engine("llama-server")
    info = e.load(url)
    assert info["engine"] == "llama-server" and info["n_ctx"] > 0
    yield e
    e.close()


def ask(engine, params=GREEDY, ctx=None, messages=QUESTION):
    chunks = list(engine.generate(messages, params, ctx))
    assert chunks[-1].finished
    return "".join(c.text for c in chunks), chunks


def caps_ratio(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(c.isupper() for c in letters) / max(1, len(letters))


def test_lists_the_servers_adapters(engine, server):
    _url, loras = server
    assert [a["path"] for a in engine.server_adapters()] == loras
    # This llama-server reports scale 1.0 even with --lora-init-without-apply, one more reason the engine
    # sends every adapter's scale in each request instead of trusting the server-wide defaults.
    assert all(isinstance(a["scale"], float) for a in engine.server_adapters())
    assert "shout" in engine.info["note"]


def test_base_reply_streams(engine):
    text, chunks = ask(engine)
    assert text.strip() and len(chunks) > 2
    assert chunks[-1].finish_reason in ("stop", "length") and chunks[-1].prompt_tokens
    assert caps_ratio(text) < 0.5


def test_shout_adapter_per_request_and_back_to_base(engine, server):
    _url, loras = server
    base, _ = ask(engine)
    engine.set_adapters([ActiveAdapter(loras[0], 1.0)])
    shout, _ = ask(engine)
    assert caps_ratio(shout) > 0.7, shout
    engine.set_adapters([])                                   # hot switch back, nothing stale
    again, _ = ask(engine)
    assert again == base


def test_adapter_matched_by_library_name(engine):
    # The library keeps the PEFT folder; the server has the converted shout.gguf: matched by name.
    peft_folder = str(demo.demo_adapters()[0].path)
    engine.set_adapters([ActiveAdapter(peft_folder, 1.0, name="shout")])
    text, _ = ask(engine)
    assert caps_ratio(text) > 0.7, text


def test_strength_zero_equals_base(engine, server):
    _url, loras = server
    base, _ = ask(engine)
    engine.set_adapters([ActiveAdapter(loras[0], 0.0), ActiveAdapter(loras[1], 0.0)])
    assert ask(engine)[0] == base


def test_two_adapters_mix(engine, server):
    _url, loras = server
    base, _ = ask(engine)
    engine.set_adapters([ActiveAdapter(loras[1], 1.0)])
    pirate, _ = ask(engine)
    engine.set_adapters([ActiveAdapter(loras[0], 1.0), ActiveAdapter(loras[1], 1.0)])
    assert [s for s in engine._plan if s["scale"]] == [{"id": 0, "scale": 1.0}, {"id": 1, "scale": 1.0}]
    mixed, _ = ask(engine)
    assert mixed not in (base, pirate)
    assert caps_ratio(mixed) > 0.5, mixed


def test_cancel_mid_stream_then_server_still_answers(engine):
    ctx = JobContext()
    chunks = []
    params = SamplingParams(max_tokens=400, temperature=1.0, seed=3)
    for chunk in engine.generate([ChatMessage("user", "Tell me a long story about a banana.")], params, ctx):
        chunks.append(chunk)
        if len(chunks) == 2:
            ctx.cancel()
    assert chunks[-1].finished
    if chunks[-1].finish_reason != "cancelled":       # the tiny model may end its turn in 2 tokens
        assert len(chunks) <= 3
    else:
        assert len(chunks) <= 4
    text, _ = ask(engine)                             # the slot was freed: the next request runs
    assert text.strip()


def test_adapter_not_on_the_server_is_a_clear_error(engine, tmp_path):
    other = tmp_path / "style.gguf"
    other.write_bytes(b"GGUF")
    with pytest.raises(EngineError, match=r"'style' is not loaded on the llama-server.*restart it with"):
        engine.set_adapters([ActiveAdapter(str(other), 1.0)])


def test_per_layer_strength_refused(engine, server):
    _url, loras = server
    with pytest.raises(EngineError, match="per-layer"):
        engine.set_adapters([ActiveAdapter(loras[0], 1.0, layer_scales=((0, 1, 0.5),))])


def test_server_down_is_a_clear_error():
    e = create_engine("llama-server")
    with pytest.raises(EngineError, match="cannot reach the llama-server"):
        e.load(f"http://127.0.0.1:{_free_port()}")


def test_counts_tokens_as_the_server_does_and_a_long_chat_keeps_going(engine):
    """The server's own template and tokenizer count a chat exactly as its usage figures do; a chat of
    twice its context, fitted with engines.context_window, is answered at every turn."""
    from adapters_backend.engines.context_window import can_fit, fit_engine_window
    assert can_fit(engine)
    n_ctx = engine.info["n_ctx"]
    params = SamplingParams(max_tokens=24, temperature=0.0, seed=1, repeat_penalty=1.0)
    history = [ChatMessage("system", "Be brief.")]
    left_out = []
    for i in range(40):
        question = ChatMessage("user", f"Tell me about the ship number {i} that sails from the harbour at dawn.")
        window = fit_engine_window(engine, [*history, question], n_ctx)
        text, chunks = ask(engine, params, messages=window.messages)
        last = chunks[-1]
        assert last.prompt_tokens == len(engine.prompt_tokens(window.messages)), i     # all, cached or not
        if i and window.left_out == left_out[-1]:          # the server's prompt cache held the turns before
            assert last.prompt_cached >= last.prompt_tokens // 2, i
        elif i:                                           # moved: only the system prompt was still in it
            assert 0 < last.prompt_cached < last.prompt_tokens // 2, i
        left_out.append(window.left_out)
        history += [question, ChatMessage("assistant", text)]
    assert len(engine.prompt_tokens(history)) > 1.5 * n_ctx
    assert left_out[0] == 0 and left_out == sorted(left_out) and len(set(left_out)) >= 3


@pytest.mark.parametrize("mix", [[], ["shout"]], ids=["base", "shout"])
def test_an_answer_cut_short_is_continued_by_the_server(engine, server, mix):
    """llama-server continues a conversation that ends with the assistant's text (its prefill): greedy,
    an answer cut at 4 tokens and continued until it ends is the answer written in one go, so the app's
    Continue works through it too."""
    _url, loras = server
    engine.set_adapters([ActiveAdapter(p, 1.0) for p in loras if any(n in p for n in mix)])
    assert engine.capabilities.continue_answer
    until_the_end = SamplingParams(max_tokens=200, temperature=0.0, seed=1, repeat_penalty=1.0)
    whole, chunks = ask(engine, until_the_end)
    assert chunks[-1].finish_reason == "stop"
    text, chunks = ask(engine, SamplingParams(max_tokens=4, temperature=0.0, seed=1, repeat_penalty=1.0))
    assert chunks[-1].finish_reason == "length" and whole.startswith(text) and len(text) < len(whole)
    for _ in range(20):
        more, chunks = ask(engine, until_the_end, messages=QUESTION + [ChatMessage("assistant", text)])
        text += more
        if chunks[-1].finish_reason != "length":
            break
    assert text == whole


def test_a_server_that_does_not_prefill_offers_no_continue(tmp_path_factory):
    """Started with --no-prefill-assistant, llama-server answers anew after the assistant's text: the
    engine finds that out when it connects and does not offer Continue."""
    from fixtures.llama_server import running_llama_server

    with running_llama_server(tmp_path_factory, ["--no-prefill-assistant"]) as (url, _loras):
        e = create_engine("llama-server")
        e.load(url)
        try:
            assert not e.capabilities.continue_answer
        finally:
            e.close()
