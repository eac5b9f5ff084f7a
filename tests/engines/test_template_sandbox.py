"""A model's chat template is a program the model file brings: one that works without end or fills
memory is stopped in its helper process, with a clear error, and LoRA Deck goes on (the engine then
writes a plain transcript and says why)."""
from __future__ import annotations

import resource
import sys
import time

import engine_models as em
import pytest

from adapters_backend.chat import template_sandbox
from adapters_backend.chat.template import ChatTemplate, template_from_metadata
from adapters_backend.engines.base import ChatMessage, SamplingParams, run_to_text
from adapters_backend.errors import EngineError

TIME = "ran for more than 3 s"
MEMORY = "needed more memory"
GROWING = (MEMORY, TIME)     # memory filled step by step: the cap or the clock, whichever comes first on this machine
HOSTILE = {   # what it does: (the template, what stops it)
    "repeats a string ten billion times": ("{{ 'x' * 10000000000 }}", MEMORY),
    "a power folded while compiling": ("{{ 10 ** 10000000 }}", TIME),
    "two nested loops of 100,000": (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", TIME),
    "a namespace doubling forty times": ("{% set ns = namespace(s='x') %}{% for i in range(40) %}"
                                         "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}", GROWING),
    "a macro calling itself twice per level": (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}", TIME),
    "a list doubling forty times": ("{% set ns = namespace(s=['x']) %}{% for i in range(40) %}"
                                    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}", GROWING),
    "endless recursion": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nests deeper than a chat template may"),
}
GOOD = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<a>{% endif %}"


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024 * 1024)


@pytest.fixture
def quick_limit(monkeypatch):
    monkeypatch.setattr(template_sandbox, "RENDER_SECONDS", 3.0)


@pytest.mark.parametrize("what", list(HOSTILE))
def test_a_hostile_template_is_stopped_and_the_next_one_works(what, quick_limit):
    peak = rss_mib()
    started = time.monotonic()
    template, reason = HOSTILE[what]
    with pytest.raises(EngineError, match="the model's chat template cannot be used: .*a damaged or hostile template") as e:
        ChatTemplate(template, bos_token="<s>", eos_token="</s>", source="gguf")
    assert any(r in str(e.value) for r in ((reason,) if isinstance(reason, str) else reason)), e.value
    assert time.monotonic() - started < 3.0 + 5.0            # the limit, and the helper's restart
    assert rss_mib() < peak + 200                              # none of it happened in this process
    good = ChatTemplate(GOOD, bos_token="<s>", eos_token="</s>", source="gguf")
    assert good.render([ChatMessage("user", "hi")]).text == "<user>hi<a>"


def test_the_helper_is_stopped_once_it_holds_more_than_its_memory_limit(quick_limit, monkeypatch):
    """Watched from this process, as on macOS and Windows, where no limit inside the helper holds: a
    template that takes 120 MB (under the helper's own Linux limit) and then keeps working is stopped
    as soon as it holds more than the limit, not when its time runs out."""
    monkeypatch.setattr(template_sandbox, "MEMORY_LIMIT", 48 << 20)
    template_sandbox.SANDBOX.close()                          # the next helper starts with this limit
    hoard = ("{% set big = 'x' * 120000000 %}{% for i in range(100000) %}{% for j in range(100) %}{% endfor %}"
             "{% endfor %}{{ big|length }}")
    started = time.monotonic()
    with pytest.raises(EngineError, match="needed more memory than a chat template may use"):
        ChatTemplate(hoard, bos_token="<s>", eos_token="</s>", source="gguf")
    assert time.monotonic() - started < 3.0                    # before the time limit
    monkeypatch.undo()
    template_sandbox.SANDBOX.close()
    good = ChatTemplate(GOOD, bos_token="<s>", eos_token="</s>", source="gguf")
    assert good.render([ChatMessage("user", "hi")]).text == "<user>hi<a>"


def test_the_limits_leave_room_for_a_whole_book():
    book = "The harbour keeper writes the weather in a ledger every morning. " * 60_000     # ~4 MB, ~1M tokens
    t = ChatTemplate(GOOD, bos_token="<s>", eos_token="</s>", source="gguf")
    history = [ChatMessage("user", book), ChatMessage("assistant", "Noted.")] * 4
    assert len(t.render(history).text) > 4 * len(book)


def test_a_template_that_explodes_only_on_some_input_fails_that_render(quick_limit):
    bomb = ("{% for m in messages %}{% if 'boom' in m['content'] %}{% for i in range(100000) %}"
            "{% for j in range(100000) %}{% endfor %}{% endfor %}{% endif %}{{ m['content'] }}{% endfor %}")
    t = ChatTemplate(bomb, bos_token="", eos_token="", source="gguf")      # the trial conversation passes
    assert t.render([ChatMessage("user", "hello")]).text == "hello"
    with pytest.raises(EngineError, match="failed on this conversation: it ran for more than 3 s"):
        t.render([ChatMessage("user", "boom")])
    assert t.render([ChatMessage("user", "again")]).text == "again"        # a new helper took over


def test_any_engine_gets_the_plain_transcript_for_a_template_it_cannot_use(quick_limit):
    # template_from_metadata serves the llama.cpp and the PyTorch engine alike.
    broken = template_from_metadata({"tokenizer.chat_template": "{% for %}"}, bos_token="", eos_token="")
    assert broken.source == "fallback" and "cannot be parsed" in broken.note
    hostile = template_from_metadata({"tokenizer.chat_template": HOSTILE["endless recursion"][0]},
                                     bos_token="", eos_token="")
    assert hostile.source == "fallback" and "nests deeper than a chat template may" in hostile.note
    assert hostile.render([ChatMessage("user", "hi")]).text == "User: hi\nAssistant:"


def test_a_model_with_a_hostile_template_chats_with_a_plain_transcript(tmp_path, vocab_gguf, quick_limit, make_engine):
    hostile = em.random_model(tmp_path / "hostile.gguf", vocab_gguf, HOSTILE["two nested loops of 100,000"][0])
    engine = make_engine(hostile)
    assert engine.info["chat_template"] == "fallback"
    assert "The model's chat template cannot be used: it ran for more than 3 s" in engine.info["note"]
    assert "so LoRA Deck writes the conversation as a plain" in engine.info["note"]
    assert run_to_text(engine, [ChatMessage("user", "Hello")], SamplingParams(max_tokens=4, temperature=0.0))


@pytest.mark.parametrize("template", [HOSTILE["a power folded while compiling"][0], "{{ 'x' * 1000000000 }}"],
                         ids=["power", "string"])
def test_loading_a_model_compiles_none_of_its_templates_here(tmp_path, vocab_gguf, quick_limit, make_engine, template):
    """llama-cpp-python's Llama() compiled every chat template of the GGUF in this process, and Jinja folds
    constants while compiling: the power took 12 s and then failed the whole load; the string took 11 s
    and 3.8 GB here. Now the helper alone meets the template, and the model chats with a plain transcript."""
    path = em.random_model(tmp_path / "folded.gguf", vocab_gguf, template)
    before = rss_mib()
    t0 = time.perf_counter()
    engine = make_engine(path)
    elapsed = time.perf_counter() - t0
    assert engine.info["chat_template"] == "fallback" and "cannot be used" in engine.info["note"], engine.info["note"]
    assert elapsed < 3.0 + 5.0, f"loading took {elapsed:.1f} s"      # the helper's limit and a restart
    assert rss_mib() - before < 500
    assert run_to_text(engine, [ChatMessage("user", "Hello")], SamplingParams(max_tokens=4, temperature=0.0))
