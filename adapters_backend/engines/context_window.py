"""Which part of a long chat the model is given once the whole chat no longer fits its context.

The oldest turns are left out, whole turns at a time: a window starts at a user message, and the
leading system messages are always kept. The window moves in blocks of about half the room, never a
turn at a time, because every move changes the tokens right after the system prompt, and the kept
conversation must then be read again under the mix (an exact cache cannot shift its positions). A
block move makes that happen once per half a context of new conversation instead of on every turn.

The start depends only on the conversation before the question being asked, with room kept for a
question and an answer: the pre-warm after an answer and the Send that follows compute the same
window, so the re-read a move costs happens in the background, not while the user waits. Only a
question too long for the room kept moves the window further at Send.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .base import ChatMessage

ANSWER_SHARE = 4          # a quarter of the context stays free for the answer …
QUESTION_SHARE = 8        # … and an eighth for the next question, when the history decides the window
ROLE_TOKENS = 8           # a message's template tokens besides its text (role markers), for the estimate
HUGE_CHARS = 64           # a text over this many characters per context token is not tokenized to estimate it


@dataclass(frozen=True)
class Window:
    messages: list[ChatMessage]        # what the model is given: the system messages, then the turns kept
    left_out: int                      # messages left out, the oldest after the system messages


def fit_window(messages: Sequence[ChatMessage], n_ctx: int, prompt_len: Callable[[Sequence[ChatMessage]], int],
               text_len: Callable[[str], int], continuing: bool = False) -> Window:
    """The window of `messages` that fits a context of `n_ctx` tokens. `prompt_len(msgs)` counts the
    tokens of the prompt the template makes of `msgs`, exactly; `text_len(text)` those of one text,
    used only to place the block boundaries. A conversation that fits is given whole. When even the
    last question alone does not fit, the window holds just that question (the engine then says so).
    `continuing`: the last message is an answer to go on with; it stays with its question."""
    messages = list(messages)
    head = 0
    while head < len(messages) and messages[head].role == "system":
        head += 1
    body = messages[head:]
    continuing = continuing and len(body) >= 2 and body[-1].role == "assistant" and body[-2].role == "user"
    asking = continuing or (bool(body) and body[-1].role == "user")
    history = len(body) - (2 if continuing else 1) if asking else len(body)     # the turns before the question

    answer_room = max(1, n_ctx // ANSWER_SHARE)

    def fits(start: int, end: int, room: int) -> bool:
        given = messages[:head] + body[start:end]
        return (prompt_len(given) if given else 0) + room <= n_ctx

    def estimate(text: str) -> int:          # a pasted book is far over any context: no need to tokenize it
        return len(text) // 4 if len(text) > HUGE_CHARS * n_ctx else text_len(text)

    # Turn starts, with the tokens before each (estimated): the candidate window starts.
    starts, before, total = [], [], 0
    for i, m in enumerate(body[:history]):
        if m.role == "user" or i == 0:
            starts.append(i)
            before.append(total)
        total += estimate(m.content) + ROLE_TOKENS
    starts.append(history)                                       # nothing of the history kept
    before.append(total)

    start = 0
    room = answer_room + max(1, n_ctx // QUESTION_SHARE)
    if total > 2 * n_ctx or not fits(0, history, room):
        block = max(1, (n_ctx - room) // 2)

        def start_of(m: int) -> int:                             # the first turn after m blocks
            return next((s for s, b in zip(starts, before) if b >= m * block), history)

        hi = max(1, -(-total // block))                          # start_of(hi) keeps nothing
        # Windows estimated at over twice the context are not counted (a long chat's whole history
        # would be tokenized at every probe): the estimate is well within that of the real count.
        lo = min(hi, max(1, -(-(total - 2 * n_ctx) // block)))
        while lo < hi:                                           # the fewest blocks that fit
            mid = (lo + hi) // 2
            if fits(start_of(mid), history, room):
                hi = mid
            else:
                lo = mid + 1
        start = start_of(lo)
    if asking and sum(estimate(m.content) for m in body[history:]) >= n_ctx:   # over the context: alone
        start = history
    elif asking and not fits(start, len(body), answer_room):    # a long question: leave out more
        later = [s for s in starts if s > start] + [history]
        start = next((s for s in later if fits(s, len(body), answer_room)), history)
    return Window(messages[:head] + body[start:], start)


def context_exceeded(messages: Sequence[ChatMessage], n_tokens: int, n_ctx: int, longer: str = "") -> str:
    """Why a prompt of `n_tokens` is refused, with what helps: a single message must be shortened (a
    new chat would not help it), a conversation can start again. `longer`: how to get a longer context."""
    asked = [m for m in messages if m.role != "system"]
    if len(asked) == 1 and asked[0].role == "user":
        return (f"your message alone ({n_tokens:,} tokens) does not fit the context of {n_ctx:,} tokens; "
                f"shorten it{longer}")
    return (f"the conversation ({n_tokens:,} tokens) does not fit the context of {n_ctx:,} tokens; start a new "
            f"chat{longer}")


def fit_engine_window(engine, messages: Sequence[ChatMessage], n_ctx: int, continuing: bool = False) -> Window:
    """`fit_window` with an engine's own tokenizer (`prompt_tokens`, `tokenize`)."""
    return fit_window(messages, n_ctx, lambda msgs: len(engine.prompt_tokens(msgs)),
                      lambda text: len(engine.tokenize(text, add_bos=False)), continuing)


def can_fit(engine) -> bool:
    """Whether `engine` can count its prompt tokens (the vLLM and LoRAX engines cannot: their server's
    own limit applies)."""
    return callable(getattr(engine, "prompt_tokens", None)) and callable(getattr(engine, "tokenize", None))


__all__ = ["ANSWER_SHARE", "QUESTION_SHARE", "Window", "can_fit", "context_exceeded", "fit_engine_window",
           "fit_window"]
