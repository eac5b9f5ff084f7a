"""vLLM and LoRAX engines against the documented request/response formats (fake servers in
fake_servers.py; the real ones need a GPU)."""
from __future__ import annotations

import threading

import pytest
from fake_servers import FakeLorax, FakeVllm

from adapters_backend.engines import create_engine
from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams
from adapters_backend.errors import EngineError
from adapters_backend.jobs import JobContext

MSGS = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi?")]
GREEDY = SamplingParams(max_tokens=16, temperature=0.0, seed=7)

# A tiny ChatML template, so the LoRAX merge path renders a prompt without the Hub.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def reply(engine, params=GREEDY, ctx=None):
    chunks = list(engine.generate(MSGS, params, ctx))
    return "".join(c.text for c in chunks), chunks[-1]


# ---------------------------------------------------------------- vLLM
@pytest.fixture
def vllm():
    with FakeVllm() as server:
        engine = create_engine("vllm")
        engine.load(server.url + "/v1")            # the /v1 suffix users copy from docs is accepted
        yield server, engine
        engine.close()


def test_vllm_describes_base_and_capabilities(vllm):
    server, engine = vllm
    assert engine.info["name"] == server.base and engine.info["n_ctx"] == 8192
    assert engine.info["server_adapters"] == ["sql-lora"]
    caps = engine.capabilities
    assert not caps.multi_adapter and caps.strength_range == (1.0, 1.0) and caps.hot_switch


def test_vllm_base_then_registered_adapter_streams(vllm):
    server, engine = vllm
    text, last = reply(engine)
    assert text == "Hello from the fake server." and last.finished and last.finish_reason == "stop"
    assert last.prompt_tokens == 7 and last.completion_tokens == 6
    body = server.posted("/v1/chat/completions")[-1]
    assert body["model"] == server.base and body["stream"] is True and body["temperature"] == 0.0
    assert body["seed"] == 7 and body["messages"][0] == {"role": "system", "content": "Be brief."}
    engine.set_adapters([ActiveAdapter("/srv/adapters/sql", 1.0)])     # matched by its root path
    reply(engine)
    assert server.posted("/v1/chat/completions")[-1]["model"] == "sql-lora"
    assert not server.posted("/v1/load_lora_adapter")


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_sent_apart_comes_between_think_tags(vllm, field):
    """A thinking model behind a server that sends its reasoning apart from the answer: the text holds
    it between <think> tags, as a local model writes it, and the app tells the two apart again (read
    as `content` alone, nothing showed while the model thought, and the reasoning was lost)."""
    from desktop_app.reasoning import split_reasoning

    server, engine = vllm
    server.thoughts, server.thoughts_field = ["The user", " says hi.", "\nGreet back."], field
    chunks = list(engine.generate(MSGS, GREEDY))
    text = "".join(c.text for c in chunks)
    assert text == "<think>The user says hi.\nGreet back.</think>\n\nHello from the fake server."
    assert chunks[0].text == "<think>The user"                   # shown from the first thought on
    parts = split_reasoning(text)
    assert parts.reasoning == "The user says hi.\nGreet back." and parts.answer == "Hello from the fake server."
    assert chunks[-1].completion_tokens == 6                    # the server's usage, as before
    server.thoughts = []
    assert reply(engine)[0] == "Hello from the fake server."     # a reply without reasoning is as it was


def test_the_thinking_switch_goes_to_the_server_template(vllm):
    server, engine = vllm
    reply(engine, SamplingParams(max_tokens=16, temperature=0.0, thinking=False))
    assert server.posted("/v1/chat/completions")[-1]["chat_template_kwargs"] == {"enable_thinking": False}
    reply(engine)                                                        # left to the template: not sent
    assert "chat_template_kwargs" not in server.posted("/v1/chat/completions")[-1]


def test_vllm_loads_new_adapter_at_runtime_and_unloads_on_close(vllm):
    server, engine = vllm
    engine.set_adapters([ActiveAdapter("/srv/adapters/pirate", 1.0, name="pirate")])
    assert server.posted("/v1/load_lora_adapter") == [{"lora_name": "pirate", "lora_path": "/srv/adapters/pirate"}]
    reply(engine)
    assert server.posted("/v1/chat/completions")[-1]["model"] == "pirate"
    engine.set_adapters([ActiveAdapter("/srv/adapters/pirate", 0.0, name="pirate")])   # strength 0 = off
    reply(engine)
    assert server.posted("/v1/chat/completions")[-1]["model"] == server.base
    engine.close()
    assert server.posted("/v1/unload_lora_adapter") == [{"lora_name": "pirate"}]
    assert "pirate" not in server.loras


@pytest.mark.parametrize("strength", [0.5, -1.0, 1.5])
def test_vllm_refuses_strengths(vllm, strength):
    _server, engine = vllm
    with pytest.raises(EngineError, match="vLLM has no adapter strength"):
        engine.set_adapters([ActiveAdapter("/srv/adapters/sql", strength)])


def test_vllm_refuses_two_adapters_and_keeps_previous_mix(vllm):
    server, engine = vllm
    engine.set_adapters([ActiveAdapter("/srv/adapters/sql", 1.0)])
    with pytest.raises(EngineError, match="only one adapter per request"):
        engine.set_adapters([ActiveAdapter("/srv/adapters/sql", 1.0), ActiveAdapter("/srv/x", 1.0)])
    reply(engine)
    assert server.posted("/v1/chat/completions")[-1]["model"] == "sql-lora"


def test_vllm_load_errors_are_clear():
    with FakeVllm() as server:
        engine = create_engine("vllm")
        engine.load(server.url)
        with pytest.raises(EngineError, match="must exist on the server's machine") as err:
            engine.set_adapters([ActiveAdapter("/srv/missing-adapter", 1.0)])
        assert "No adapter found" in str(err.value)
        server.runtime_updates = False
        with pytest.raises(EngineError, match="VLLM_ALLOW_RUNTIME_LORA_UPDATING=True"):
            engine.set_adapters([ActiveAdapter("/srv/other", 1.0)])
        engine.close()


def test_vllm_unknown_model_error_is_surfaced(vllm):
    server, engine = vllm
    engine.set_adapters([ActiveAdapter("/srv/adapters/sql", 1.0)])
    server.loras.clear()                           # someone unloaded it behind our back
    with pytest.raises(EngineError, match="HTTP 404.*does not exist"):
        reply(engine)


def test_vllm_cancel_closes_the_stream(vllm):
    server, engine = vllm
    server.delay = 0.02
    ctx = JobContext()
    chunks = []
    for chunk in engine.generate(MSGS, SamplingParams(max_tokens=500, temperature=0.0), ctx):
        chunks.append(chunk)
        if len(chunks) == 3:
            ctx.cancel()
    assert chunks[-1].finish_reason == "cancelled" and len(chunks) <= 5
    assert server.disconnected.wait(5), "the server never saw the client go away"


def test_server_down_is_a_clear_error():
    with FakeVllm() as server:
        url = server.url
    engine = create_engine("vllm")
    with pytest.raises(EngineError, match="cannot reach the vLLM server"):
        engine.load(url)


# ---------------------------------------------------------------- LoRAX
@pytest.fixture
def lorax():
    with FakeLorax() as server:
        engine = create_engine("lorax", chat_template=CHATML, eos_token="</s>")
        engine.load(server.url)
        yield server, engine
        engine.close()


def test_lorax_base_and_single_adapter_use_chat_completions(lorax):
    server, engine = lorax
    assert engine.info["name"] == server.model_id and engine.info["n_ctx"] == 2048
    text, last = reply(engine)
    assert text == "Hello from the fake server." and last.finish_reason == "stop"
    body = server.posted("/v1/chat/completions")[-1]
    assert body["model"] == "" and "temperature" not in body and "top_p" not in body   # greedy: none sent
    engine.set_adapters([ActiveAdapter("predibase/conllpp", 1.0)])
    reply(engine, SamplingParams(max_tokens=8, temperature=0.7, top_p=0.9, top_k=20, seed=3))
    body = server.posted("/v1/chat/completions")[-1]
    assert body["model"] == "predibase/conllpp" and "adapter_source" not in body
    assert body["temperature"] == 0.7 and body["top_p"] == 0.9 and body["top_k"] == 20 and body["seed"] == 3
    engine.set_adapters([ActiveAdapter("/data/adapters/sql", 1.0)])
    reply(engine)
    body = server.posted("/v1/chat/completions")[-1]
    assert body["model"] == "/data/adapters/sql" and body["adapter_source"] == "local"


def test_lorax_mix_is_a_merged_adapters_request(lorax):
    server, engine = lorax
    engine.set_adapters([ActiveAdapter("org/style", 0.7), ActiveAdapter("org/domain", 1.2),
                         ActiveAdapter("org/off", 0.0)])
    text, last = reply(engine)
    assert text == "Merged answer." and last.finish_reason == "stop"       # the special </s> is not text
    assert last.prompt_tokens == 12 and last.completion_tokens == 4
    body = server.posted("/generate_stream")[-1]
    p = body["parameters"]
    assert p["merged_adapters"] == {"ids": ["org/style", "org/domain"], "weights": [0.7, 1.2],
                                    "merge_strategy": "linear"}
    assert "adapter_id" not in p and p["max_new_tokens"] == 16 and not p.get("do_sample")
    assert body["inputs"].startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert body["inputs"].endswith("<|im_start|>assistant\n")


def test_lorax_ties_strategy_sends_density():
    with FakeLorax() as server:
        engine = create_engine("lorax", chat_template=CHATML, merge_strategy="ties", density=0.2,
                               majority_sign_method="total")
        engine.load(server.url)
        engine.set_adapters([ActiveAdapter("/a/x", 1.0), ActiveAdapter("/a/y", 0.5)])
        reply(engine)
        p = server.posted("/generate_stream")[-1]["parameters"]
        assert p["merged_adapters"]["merge_strategy"] == "ties" and p["merged_adapters"]["density"] == 0.2
        assert p["merged_adapters"]["majority_sign_method"] == "total" and p["adapter_source"] == "local"
        engine.close()
    with pytest.raises(EngineError, match="needs a density"):
        create_engine("lorax", merge_strategy="dare_ties")


@pytest.mark.parametrize("mix, message", [
    ([("org/a", 0.5)], "cannot weaken or strengthen a single adapter"),
    ([("org/a", -1.0), ("org/b", 1.0)], "only positively"),
    ([("org/a", 1.0), ("/local/b", 1.0)], "one source per request"),
])
def test_lorax_refuses_what_it_cannot_do(lorax, mix, message):
    _server, engine = lorax
    with pytest.raises(EngineError, match=message):
        engine.set_adapters([ActiveAdapter(p, s) for p, s in mix])


def test_lorax_per_layer_strength_refused(lorax):
    _server, engine = lorax
    with pytest.raises(EngineError, match="per-layer strengths are not possible"):
        engine.set_adapters([ActiveAdapter("org/a", 1.0, layer_scales=((0, 3, 0.5),))])


def test_lorax_error_inside_the_stream_is_surfaced(lorax):
    _server, engine = lorax
    engine.set_adapters([ActiveAdapter("org/a", 1.0), ActiveAdapter("org/b", 1.0)])
    with pytest.raises(EngineError, match="CUDA out of memory"):
        list(engine.generate([ChatMessage("user", "FAIL please")], GREEDY))


def test_lorax_merge_without_template_says_what_to_do():
    with FakeLorax() as server:
        engine = create_engine("lorax", fetch_template=False)
        engine.load(server.url)
        engine.set_adapters([ActiveAdapter("org/a", 1.0), ActiveAdapter("org/b", 1.0)])
        with pytest.raises(EngineError, match="needs the chat template of mistralai/Mistral-7B"):
            reply(engine)
        engine.close()


def test_lorax_cancel_during_silent_prefill():
    """Cancel while the server has not sent a byte yet (a long prompt): the engine stops at once."""
    with FakeLorax() as server:
        engine = create_engine("lorax")
        engine.load(server.url)
        release = threading.Event()
        server.post = lambda h, body: release.wait(10)      # the server "thinks" and sends nothing
        ctx = JobContext()
        threading.Timer(0.2, ctx.cancel).start()
        chunks = list(engine.generate(MSGS, GREEDY, ctx))
        release.set()
        assert [c.finish_reason for c in chunks] == ["cancelled"]
        engine.close()


def test_not_a_url_is_refused(tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    with pytest.raises(EngineError, match="give its address"):
        create_engine("lorax").load(str(model))


def test_messages_name_each_server_once():
    from adapters_backend.engines.remote.http import server_name

    assert [server_name(k) for k in ("llama-server", "vLLM", "LoRAX", "remote server")] == [
        "llama-server", "vLLM server", "LoRAX server", "remote server"]
