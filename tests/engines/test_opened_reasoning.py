"""Templates that open the reasoning in the prompt (DeepSeek-R1's end the generation prompt with
`<think>`): the reply goes on inside it, so both engines start the reply with that opened text. The
answer then reads as the model's whole turn (folded from its first word), and an answer cut inside
its reasoning is continued from the very prompt it was written after: greedy, cut and continued
equals written in one go."""
from __future__ import annotations

import shutil

import engine_models as em
import pytest

from adapters_backend.chat.reply_text import ReplyText
from adapters_backend.chat.template import ChatTemplate
from adapters_backend.engines.base import ChatMessage, SamplingParams

ASK = [ChatMessage("user", "What is 2 + 2?")]


def greedy(n: int) -> SamplingParams:
    return SamplingParams(max_tokens=n, temperature=0.0, repeat_penalty=1.0)


def text_of(engine, messages, n: int) -> str:
    return "".join(c.text for c in engine.generate(messages, greedy(n)))


@pytest.mark.parametrize("source", ["fallback", "gguf"])        # rendered here, and in the sandbox
def test_the_prompt_says_what_it_opened(source):
    r1 = ChatTemplate(em.R1_LIKE_TEMPLATE, bos_token="<s>", eos_token="</s>", source=source)
    assert r1.render(ASK).opened == "<think>\n"
    cut = r1.render([*ASK, ChatMessage("assistant", "<think>\nLet me add")])
    assert cut.continues and cut.opened == ""                # the answer's text already holds it
    assert cut.text.endswith("<|assistant|>\n<think>\nLet me add")
    qwen3 = ChatTemplate(em.QWEN3_LIKE_TEMPLATE, bos_token="", eos_token="", source=source)
    assert qwen3.render(ASK).opened == ""                    # the model writes its own <think>
    assert qwen3.render(ASK, thinking=False).opened == ""   # an empty reasoning, closed: nothing open
    quoted = ChatTemplate(em.CHAT_TEMPLATE, bos_token="", eos_token="", source=source)
    assert quoted.render([ChatMessage("user", "Say <think>")]).opened == ""   # not at the end: text


def test_the_opened_text_comes_with_the_first_words():
    reply = ReplyText(("</s>",), opened="<think>\n")
    assert reply.push(b" ") == ""                          # a reply's leading space is still dropped
    assert reply.push(b" Two") == "<think>\nTwo"
    assert reply.push(b" and two") == " and two" and reply.text == "<think>\nTwo and two"
    silent = ReplyText(("</s>",), opened="<think>\n")
    assert silent.push(b"</s>") == "" and silent.flush() == "" and silent.text == ""    # no text, no tag


def check_continued(engine):
    whole = text_of(engine, ASK, 12)
    assert whole.startswith("<think>\n") and len(whole) > len("<think>\n") + 4
    for n in range(3, 9):
        part = text_of(engine, ASK, n)
        assert whole.startswith(part), (part, whole)
        rest = text_of(engine, [*ASK, ChatMessage("assistant", part)], 12 - n)
        assert part + rest == whole, n


def test_the_llama_engine_starts_the_reply_inside_the_reasoning(tmp_path, vocab_gguf, make_engine):
    path = em.random_model(tmp_path / "r1.gguf", vocab_gguf, em.R1_LIKE_TEMPLATE)
    check_continued(make_engine(path))


def test_the_pytorch_engine_starts_the_reply_inside_the_reasoning(tmp_path):
    """The tiny HF model's vocabulary writes bytes that do not decode, so its text cannot be cut and
    put back token for token: the reply's start, and the prompt a continuation reads, are checked."""
    pytest.importorskip("torch")
    from fixtures.tiny_gguf import tiny_hf_model

    from adapters_backend.engines.torch_engine import TorchEngine

    folder = shutil.copytree(tiny_hf_model("llama"), tmp_path / "r1")
    (folder / "chat_template.jinja").write_text(em.R1_LIKE_TEMPLATE)
    engine = TorchEngine(device="cpu", dtype="float32")
    try:
        engine.load(folder)
        assert text_of(engine, ASK, 6).startswith("<think>\n")
        asked = engine._template.render(ASK)
        part = "<think>\nLet me add"
        going_on = list(engine.generate([*ASK, ChatMessage("assistant", part)], greedy(2)))[-1]
        read = engine.tokenize(asked.text + part.removeprefix(asked.opened), add_bos=asked.add_bos)
        assert going_on.prompt_tokens == len(read)
    finally:
        engine.close()
