"""A chat longer than the context keeps going: its oldest turns are left out, in blocks, the same way
for the pre-warm after an answer and the Send that follows (engines.context_window).

The rules are checked with a word-counting tokenizer, then on the llama.cpp engine: a chat of many
turns in a small context answers every turn, each answer equals a fresh engine's answer to the same
window, and the Send after a pre-warm reads only its question, also on the turns where the window moved."""
from __future__ import annotations

import pytest

from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams, run_to_text
from adapters_backend.engines.context_window import ANSWER_SHARE, QUESTION_SHARE, fit_engine_window, fit_window

SYSTEM = ChatMessage("system", "Answer in one short paragraph. " * 3)


def text_len(text: str) -> int:
    return len(text.split())


def prompt_len(msgs) -> int:
    """BOS, four template tokens a message, three for the assistant's turn."""
    return 1 + sum(text_len(m.content) + 4 for m in msgs) + 3


def turn(i: int, q_words: int = 12, a_words: int = 40) -> list[ChatMessage]:
    return [ChatMessage("user", " ".join([f"q{i}"] * q_words)), ChatMessage("assistant", " ".join([f"a{i}"] * a_words))]


def fit(msgs, n_ctx=1024):
    return fit_window(msgs, n_ctx, prompt_len, text_len)


def test_a_chat_that_fits_is_given_whole():
    chat = [SYSTEM, *turn(0), *turn(1), ChatMessage("user", "and then?")]
    w = fit(chat)
    assert w.messages == chat and w.left_out == 0
    assert fit([]).messages == [] and fit([ChatMessage("user", "hi")]).left_out == 0


def test_every_window_fits_keeps_the_system_prompt_and_starts_at_a_question():
    n_ctx = 1024
    history: list[ChatMessage] = [SYSTEM]
    for i in range(80):                                          # ~4,500 tokens: four contexts
        question = turn(i)[0]
        w = fit([*history, question], n_ctx)
        assert w.messages[0] == SYSTEM and w.messages[1].role == "user" and w.messages[-1] == question
        assert w.messages[1:] == history[1 + w.left_out:] + [question]         # the newest turns, in order
        assert prompt_len(w.messages) + n_ctx // ANSWER_SHARE <= n_ctx
        history += turn(i)
    assert w.left_out > 0


def test_the_window_moves_in_blocks_and_the_prewarm_and_the_send_agree():
    """The start depends on the history only, so the pre-warm after an answer (no question yet) and
    the Send of an ordinary question give the model the same turns; it moves rarely, never back."""
    n_ctx = 1024
    history: list[ChatMessage] = [SYSTEM]
    starts = []
    for i in range(120):
        prewarm = fit(history, n_ctx)
        send = fit([*history, turn(i)[0]], n_ctx)
        assert send.left_out == prewarm.left_out and send.messages[:-1] == prewarm.messages
        starts.append(send.left_out)
        history += turn(i)
    moves = [t for t in range(1, len(starts)) if starts[t] != starts[t - 1]]
    assert starts == sorted(starts) and len(moves) >= 3
    room = n_ctx - n_ctx // ANSWER_SHARE - n_ctx // QUESTION_SHARE
    per_turn = prompt_len(turn(0)) - 4
    # Each move leaves out about half the room at once: the next one comes that many tokens later.
    assert min(b - a for a, b in zip(moves, moves[1:])) >= (room // 2) // per_turn - 1
    for t in moves:
        dropped = starts[t] - starts[t - 1]
        assert dropped >= 2 * ((room // 2) // per_turn - 1)      # messages: two a turn


def test_a_long_question_leaves_out_more_and_one_longer_than_the_context_goes_alone():
    n_ctx = 1024
    history = [SYSTEM] + [m for i in range(12) for m in turn(i)]
    usual = fit([*history, turn(99)[0]], n_ctx)
    long_q = ChatMessage("user", "word " * 500)
    w = fit([*history, long_q], n_ctx)
    assert w.left_out > usual.left_out and w.messages[1].role == "user"
    assert prompt_len(w.messages) + n_ctx // ANSWER_SHARE <= n_ctx
    huge = ChatMessage("user", "word " * 2000)
    w = fit([*history, huge], n_ctx)
    assert w.messages == [SYSTEM, huge]                          # the engine then says it does not fit


def test_a_chat_longer_than_the_context_keeps_answering_exactly_on_the_engine(tiny, make_engine):
    n_ctx = 256
    greedy = SamplingParams(max_tokens=16, temperature=0.0, repeat_penalty=1.0)
    mix = [ActiveAdapter(tiny.l1_path, 0.7)]
    e = make_engine(tiny.base, n_ctx=n_ctx, kv_snapshot_budget=64 << 20)
    ref = make_engine(tiny.base, n_ctx=n_ctx, kv_snapshot_budget=0)
    e.set_adapters(mix)
    ref.set_adapters(mix)
    history = [ChatMessage("system", "Be brief.")]
    left_out = []
    for i in range(14):
        e.prewarm(fit_engine_window(e, history, n_ctx).messages)          # the app's after-answer step
        question = ChatMessage("user", f"Question number {i}: what comes after {i}?")
        w = fit_engine_window(e, [*history, question], n_ctx)
        chunks = list(e.generate(w.messages, greedy))
        answer = "".join(c.text for c in chunks)
        last = chunks[-1]
        assert last.prompt_tokens + n_ctx // ANSWER_SHARE <= n_ctx
        asked = len(e.prompt_tokens(w.messages)) - len(e.prompt_tokens(w.messages[:-1], add_generation_prompt=False))
        assert last.prompt_tokens - last.prompt_cached <= asked + 1, i   # only the question was read
        ref._kv.invalidate()
        assert run_to_text(ref, w.messages, greedy) == answer, i
        left_out.append(w.left_out)
        history += [question, ChatMessage("assistant", answer)]
    assert left_out[0] == 0 and left_out[-1] > 0 and left_out == sorted(left_out)
    assert len(set(left_out)) >= 3                                 # the window moved, more than once


@pytest.mark.parametrize("n_ctx", [64, 96])
def test_a_question_longer_than_the_context_is_still_a_clear_error(tiny, make_engine, n_ctx):
    from adapters_backend.errors import EngineError
    e = make_engine(tiny.base, n_ctx=n_ctx)
    chat = [ChatMessage("user", "hello"), ChatMessage("assistant", "hi"), ChatMessage("user", "word " * 200)]
    w = fit_engine_window(e, chat, n_ctx)
    assert w.messages == chat[-1:]
    with pytest.raises(EngineError, match="does not fit the context"):
        list(e.generate(w.messages, SamplingParams(max_tokens=4)))


def test_a_very_long_chat_counts_only_windows_near_the_context():
    """Ten thousand turns: the exact count (a whole render and tokenization) is asked only of windows
    near the context's size, never of the whole history."""
    history = [SYSTEM] + [m for i in range(10_000) for m in turn(i)]
    counted = []

    def counting(msgs):
        counted.append(prompt_len(msgs))
        return counted[-1]

    w = fit_window([*history, turn(10_000)[0]], 1024, counting, text_len)
    assert 0 < prompt_len(w.messages) + 1024 // ANSWER_SHARE <= 1024
    assert counted and max(counted) <= 3 * 1024 and len(counted) <= 12


def test_a_pasted_book_is_not_tokenized_at_every_turn():
    """A message of 4 MB in the history, then one as the question: neither is given to the tokenizer
    to place the window (it is far over the context whatever its exact count); the one in the history
    is left out, the question goes alone (the engine then says it does not fit)."""
    book = "word " * 800_000
    seen = []

    def text_counting(text):
        seen.append(len(text))
        return text_len(text)

    def prompt_counting(msgs):
        seen.append(sum(len(m.content) for m in msgs))
        return prompt_len(msgs)

    history = [SYSTEM, ChatMessage("user", book), ChatMessage("assistant", "ok")] + [m for i in range(8) for m in turn(i)]
    w = fit_window([*history, turn(9)[0]], 1024, prompt_counting, text_counting)
    assert w.left_out >= 2 and all(m.content != book for m in w.messages)
    assert max(seen) < len(book)
    seen.clear()
    w = fit_window([SYSTEM, *history[3:], ChatMessage("user", book)], 1024, prompt_counting, text_counting)
    assert [m.content for m in w.messages] == [SYSTEM.content, book] and max(seen) < len(book)


def test_an_answer_being_continued_stays_with_its_question():
    """Continuing a cut answer: the window is the one its question had at Send (the history decides
    it), and the question and the answer so far are both given; as a pre-warm (not continuing) the
    same messages are all history."""
    n_ctx = 1024
    history: list[ChatMessage] = [SYSTEM]
    for i in range(60):
        history += turn(i)
    question, cut = turn(60)[0], ChatMessage("assistant", "a60 " * 30)
    asked = fit([*history, question], n_ctx)
    going_on = fit_window([*history, question, cut], n_ctx, prompt_len, text_len, continuing=True)
    assert going_on.messages[-2:] == [question, cut] and going_on.left_out == asked.left_out
    assert going_on.messages[:-1] == asked.messages
    assert prompt_len(going_on.messages) <= n_ctx
    # An answer so long the question and it no longer fit with the history: history is left out first.
    long_cut = ChatMessage("assistant", "a60 " * 600)
    w = fit_window([*history, question, long_cut], n_ctx, prompt_len, text_len, continuing=True)
    assert w.messages[-2:] == [question, long_cut] and w.left_out > asked.left_out
