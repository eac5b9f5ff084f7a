"""Thinking models whose chat template has a switch for it (Qwen3's `enable_thinking`) can be asked to
answer at once: `SamplingParams(thinking=False)` gives the template `enable_thinking=false`, which
writes an empty reasoning into the prompt, in the template sandbox as in the fallback; a template
without the switch is rendered as before, and nothing else reaches a template."""
from __future__ import annotations

import engine_models as em
import pytest

from adapters_backend.chat.template import ChatTemplate
from adapters_backend.chat.template_sandbox import template_variables
from adapters_backend.engines.base import ChatMessage, SamplingParams

QWEN3_LIKE = em.QWEN3_LIKE_TEMPLATE
PLAIN = QWEN3_LIKE.replace("enable_thinking", "other_switch")
MSGS = [ChatMessage("user", "What is 2 + 2?")]
OPENED = "<|im_start|>assistant\n"


@pytest.mark.parametrize("source", ["fallback", "gguf"])         # rendered here, and in the sandbox
def test_the_switch_reaches_the_template(source):
    t = ChatTemplate(QWEN3_LIKE, bos_token="", eos_token="", source=source)
    assert t.thinking_switch
    assert t.render(MSGS).text.endswith(OPENED)
    assert t.render(MSGS, thinking=True).text.endswith(OPENED)
    assert t.render(MSGS, thinking=False).text.endswith(OPENED + "<think>\n\n</think>\n\n")
    plain = ChatTemplate(PLAIN, bos_token="", eos_token="", source=source)
    assert not plain.thinking_switch and plain.render(MSGS, thinking=False).text.endswith(OPENED)


def test_only_the_known_switches_of_the_right_type_reach_a_template():
    assert template_variables({"enable_thinking": False}) == {"enable_thinking": False}
    assert template_variables({"enable_thinking": "no", "messages": [], "bos_token": "x", "raise_exception": 1}) == {}
    assert template_variables(None) == {}


def test_the_llama_engine_answers_without_reasoning_when_asked(tmp_path, vocab_gguf, make_engine):
    path = em.random_model(tmp_path / "thinker.gguf", vocab_gguf, QWEN3_LIKE)
    engine = make_engine(path)
    assert engine.info["thinking_switch"] and engine.info["chat_template"] == "gguf"
    plain = em.random_model(tmp_path / "plain.gguf", vocab_gguf)
    assert not make_engine(plain).info["thinking_switch"]

    def prompt_tokens(thinking):
        chunks = list(engine.generate(MSGS, SamplingParams(max_tokens=2, temperature=0.0, thinking=thinking)))
        return chunks[-1].prompt_tokens

    rendered = engine._template.render(MSGS, thinking=False)
    want = len(engine._llm.tokenize(rendered.text.encode(), add_bos=rendered.add_bos, special=True))
    assert prompt_tokens(False) == want > prompt_tokens(None) == prompt_tokens(True)


def test_loradeck_serve_takes_the_switch_as_llama_server_and_vllm_do(tmp_path, vocab_gguf):
    """`chat_template_kwargs: {"enable_thinking": false}` in a request (the demo model has no switch: a
    thinking model's file here)."""
    import openai

    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    from adapters_backend.serve import create_app
    from adapters_backend.serve.runner import BackgroundServer

    path = em.random_model(tmp_path / "thinker.gguf", vocab_gguf, QWEN3_LIKE)
    server = BackgroundServer(create_app(path, engine_factory=lambda: LlamaCppEngine(n_ctx=512, n_threads=1)))
    url = server.start("127.0.0.1", 0, timeout=120)
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)

        def prompt_tokens(**extra):
            return client.chat.completions.create(
                model="thinker", messages=[{"role": "user", "content": MSGS[0].content}], max_tokens=2,
                temperature=0, extra_body=extra).usage.prompt_tokens

        at_once = prompt_tokens(chat_template_kwargs={"enable_thinking": False})
        assert at_once > prompt_tokens() == prompt_tokens(chat_template_kwargs={"enable_thinking": True})
    finally:
        server.stop()


def test_the_pytorch_engine_answers_without_reasoning_when_asked(tmp_path):
    """The same switch from a Hugging Face model's own template (chat_template.jinja, read by transformers)."""
    import shutil

    pytest.importorskip("torch")
    from fixtures.tiny_gguf import tiny_hf_model

    from adapters_backend.engines.torch_engine import TorchEngine

    folder = shutil.copytree(tiny_hf_model("llama"), tmp_path / "thinker")
    (folder / "chat_template.jinja").write_text(QWEN3_LIKE)
    engine = TorchEngine(device="cpu", dtype="float32")
    try:
        engine.load(folder)
        assert engine.info["thinking_switch"]
        tokens = {thinking: list(engine.generate(MSGS, SamplingParams(max_tokens=2, temperature=0.0,
                                                                       thinking=thinking)))[-1].prompt_tokens
                  for thinking in (None, False)}
        rendered = engine._template.render(MSGS, thinking=False)
        assert tokens[False] == len(engine.tokenize(rendered.text, add_bos=rendered.add_bos)) > tokens[None]
    finally:
        engine.close()
