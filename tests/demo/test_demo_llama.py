"""The shipped demo through llama.cpp: the base model chats, each adapter's behaviour grows with its
strength, strength 0 is the base exactly, and two adapters mix.

Runs the shipped llama.cpp LoRA GGUFs (adapters_backend/demo/assets/lora-gguf/) with llama-cpp-python's low-level
adapter API, at temperature 0. Takes a few seconds.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from adapters_backend import demo

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging" / "demo"))
from demo_llama import DemoChat  # noqa: E402
from demo_metrics import behaviour_score, capital_fraction, pirate_rate, reversal_score  # noqa: E402
from measure_demo import EVAL_QUESTIONS, STRENGTHS  # noqa: E402

pytest.importorskip("llama_cpp")

EXPECTED = {
    "What is the capital of France?": "Paris", "What color is a banana?": "yellow",
    "What does a cow say?": "moo", "What is the opposite of hot?": "cold", "Who are you?": "Tiny Deck",
    "What day comes after Friday?": "Saturday", "What is 3 plus 4?": "7",
    "How many legs does a spider have?": "eight",
}


@pytest.fixture(scope="module")
def chat():
    c = DemoChat(demo.demo_model_path())
    for adapter in demo.demo_adapters():
        c.load_adapter(adapter.name, demo.demo_lora_gguf(adapter.name))
    yield c
    c.close()


@pytest.fixture(scope="module")
def plain(chat):
    return chat.answers(EVAL_QUESTIONS, {})


def test_base_model_answers_sensibly(plain):
    answers = dict(zip(EVAL_QUESTIONS, plain))
    for question, word in EXPECTED.items():
        assert word in answers[question], (question, answers[question])
    assert behaviour_score("shout", plain, plain) < 0.15
    assert behaviour_score("pirate", plain, plain) < 0.02


def test_chat_template_handles_system_prompt_and_history(chat):
    chat.set_strengths({})
    reply = chat.llm.create_chat_completion(messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello!"},
        {"role": "assistant", "content": "Hello! How can I help you today?"},
        {"role": "user", "content": "What is the capital of Italy?"},
    ], temperature=0.0, max_tokens=40)
    choice = reply["choices"][0]
    assert choice["message"]["content"] == "The capital of Italy is Rome."
    assert choice["finish_reason"] == "stop"  # <|im_end|> ends the turn


@pytest.mark.parametrize("name", ["shout", "pirate", "reverse"])
def test_behaviour_grows_with_strength(chat, plain, name):
    scores = []
    for strength in STRENGTHS:
        scores.append(behaviour_score(name, chat.answers(EVAL_QUESTIONS, {name: strength}), plain))
    assert all(b >= a for a, b in zip(scores, scores[1:])), (name, scores)
    assert scores[-1] - scores[0] >= 0.3, (name, scores)
    print(name, [round(s, 2) for s in scores])


def test_strength_zero_reproduces_the_base_exactly(chat, plain):
    chat.answers(EVAL_QUESTIONS[:2], {"shout": 1.0, "pirate": 0.5})  # change state first
    assert chat.answers(EVAL_QUESTIONS, {"shout": 0.0, "pirate": 0.0, "reverse": 0.0}) == plain


def test_each_adapter_changes_only_its_own_behaviour(chat, plain):
    shouted = chat.answers(EVAL_QUESTIONS, {"shout": 1.0})
    assert behaviour_score("pirate", shouted, plain) < 0.02
    assert behaviour_score("reverse", shouted, plain) < 0.1
    pirated = chat.answers(EVAL_QUESTIONS, {"pirate": 1.0})
    assert behaviour_score("shout", pirated, plain) < 0.15


@pytest.mark.parametrize("pair", [("shout", "pirate"), ("shout", "reverse"), ("pirate", "reverse")])
def test_two_adapters_mix(chat, plain, pair):
    mixed = chat.answers(EVAL_QUESTIONS, {pair[0]: 1.0, pair[1]: 1.0})
    for name in pair:
        alone = behaviour_score(name, chat.answers(EVAL_QUESTIONS, {name: 1.0}), plain)
        together = behaviour_score(name, mixed, plain)
        # both effects visible: each keeps at least half of what it does alone
        assert together >= 0.5 * alone, (pair, name, together, alone, mixed[:3])


def test_llama_cpp_tokenizes_chats_like_the_training_script(chat):
    pytest.importorskip("sentencepiece")
    from demo_data import qa_pairs, sample_conversation
    from demo_tokenizer import ChatTokenizer
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    tok = ChatTokenizer.from_file(demo.DEMO_ASSETS / "tokenizer.model")
    llm = chat.llm
    formatter = Jinja2ChatFormatter(llm.metadata["tokenizer.chat_template"], eos_token="<|im_end|>",
                                    bos_token="<s>")
    rng, pairs = random.Random(5), qa_pairs()
    for _ in range(200):
        messages = sample_conversation(rng, pairs, request_rate=0.3)
        rendered = formatter(messages=messages).prompt
        expected, _ = tok.encode_chat(messages, add_generation_prompt=True)
        assert llm.tokenize(rendered.encode("utf-8"), add_bos=False, special=True) == expected


def test_metrics_measure_what_they_claim():
    assert capital_fraction("ABC def") == 0.5
    assert pirate_rate("Arr! The capital o' France be Paris, matey!") == pytest.approx(4 / 8)
    assert reversal_score("Paris is France of capital The.", "The capital of France is Paris.") == 1.0
    assert reversal_score("The capital of France is Paris.", "The capital of France is Paris.") == 0.0
