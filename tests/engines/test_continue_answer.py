"""Continuing an answer cut short: a conversation that ends with the assistant's text goes on with it
(chat/template.py cuts the closed conversation after that text). On the demo model, greedy, an answer
cut after a few tokens and continued equals the answer written in one go — plain and under an adapter
— and the continuation reads only what no cache holds."""
from __future__ import annotations

import pytest

from adapters_backend import demo
from adapters_backend.chat.template import ChatTemplate
from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams
from adapters_backend.errors import EngineError

ASK = [ChatMessage("user", "What is the capital of France?")]
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_tokens=n, temperature=0.0, repeat_penalty=1.0)


def chunks(engine, messages, n):
    return list(engine.generate(messages, greedy(n)))


@pytest.mark.parametrize("adapter", [None, "pirate"])
def test_a_cut_answer_continued_equals_the_answer_in_one_go(make_engine, adapter):
    engine = make_engine(demo.demo_model_path())
    if adapter:
        engine.set_adapters([ActiveAdapter(str(demo.demo_lora_gguf(adapter)), 1.0)])
    whole = chunks(engine, ASK, 40)
    assert whole[-1].finish_reason == "stop"
    whole_text = "".join(c.text for c in whole)
    assert whole[-1].completion_tokens > 6

    # Cut where the next character is a space: the continuation must keep it (an answer's start is
    # stripped of leading spaces, a continuation is not).
    for n in range(2, 12):
        cut = chunks(engine, ASK, n)
        part = "".join(c.text for c in cut)
        if whole_text[len(part):].startswith(" "):
            break
    assert cut[-1].finish_reason == "length"
    assert part and whole_text.startswith(part) and part != whole_text
    rest = chunks(engine, ASK + [ChatMessage("assistant", part)], 40)
    assert rest[-1].finish_reason == "stop"
    assert part + "".join(c.text for c in rest) == whole_text
    # The conversation and the tokens of the cut answer were in the cache: only what follows is read.
    assert rest[-1].prompt_cached >= rest[-1].prompt_tokens - 2


def test_a_continued_prompt_ends_inside_the_answer():
    t = ChatTemplate(CHATML, bos_token="", eos_token="", source="fallback")
    closed = t.render([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello wor"}],
                      add_generation_prompt=False)
    going_on = t.render([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello wor"}])
    assert going_on.continues and not closed.continues
    assert going_on.text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello wor"
    assert closed.text == going_on.text + "<|im_end|>\n"
    asking = t.render([{"role": "user", "content": "Hi"}])
    assert not asking.continues and asking.text.endswith("<|im_start|>assistant\n")


def test_a_template_that_rewrites_answers_cannot_continue_one():
    t = ChatTemplate(CHATML.replace("{{ m['content'] }}", "{{ m['content'] | upper }}"), bos_token="",
                     eos_token="", source="fallback")
    with pytest.raises(EngineError, match="cannot be continued"):
        t.render([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello wor"}])


def test_the_pytorch_engine_continues_an_answer_from_where_it_stops():
    """The PyTorch engine reads the same continued prompt (the question's prompt and the answer's text
    as the template writes an answer, without its end): on the tiny Llama, greedy, its tokens are those transformers' own greedy
    generate() makes from that prompt, and the conversation comes from the cache."""
    torch = pytest.importorskip("torch")
    from fixtures.tiny_gguf import tiny_hf_model

    from adapters_backend.engines.torch_engine import TorchEngine

    engine = TorchEngine(device="cpu", dtype="float32")
    try:
        engine.load(tiny_hf_model("llama"))
        assert engine.capabilities.continue_answer
        chunks(engine, ASK, 4)                                   # the question is in the cache
        begun = "Hello there"
        rest = chunks(engine, ASK + [ChatMessage("assistant", begun)], 8)
        asked = engine._template.render(ASK)
        assert asked.text.endswith("\nAssistant:")            # its template writes "Assistant: <answer>\n"
        prompt = engine.tokenize(asked.text + " " + begun, add_bos=asked.add_bos)
        assert rest[-1].prompt_tokens == len(prompt) and rest[-1].prompt_cached >= len(prompt) - len(begun)
        with torch.inference_mode():
            want = engine.model.generate(torch.tensor([prompt]), max_new_tokens=8, do_sample=False,
                                         attention_mask=torch.ones(1, len(prompt), dtype=torch.long))
        got = [c.token_id for c in rest if c.token_id is not None]
        assert got and got == want[0, len(prompt):len(prompt) + len(got)].tolist()
    finally:
        engine.close()


def test_an_answer_after_reasoning_that_the_template_rewrites_is_continued():
    """Qwen3's template writes the last answer's reasoning again with its own white space: the prompt
    still ends with the answer's text after `</think>`."""
    qwen3_like = CHATML.replace(
        "{{ m['content'] }}",
        "{% if '</think>' in m['content'] %}<think>\n{{ m['content'].split('</think>')[0].split('<think>')[-1].strip() }}"
        "\n</think>\n\n{{ m['content'].split('</think>')[-1].lstrip() }}{% else %}{{ m['content'] }}{% endif %}")
    t = ChatTemplate(qwen3_like, bos_token="", eos_token="", source="fallback")
    answer = "<think>The user asks.   Paris.</think>\nThe capital is"
    going_on = t.render([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": answer}])
    assert going_on.text.endswith("<think>\nThe user asks.   Paris.\n</think>\n\nThe capital is")
