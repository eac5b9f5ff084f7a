"""The reasoning a "thinking" model writes before its answer, told apart from the answer.

Qwen3, QwQ, DeepSeek-R1 and their fine-tunes write `<think> … </think>` and then the answer. Some
templates open the `<think>` in the prompt: LoRA Deck's engines then start the reply with it, but a
server that sends the raw text (or a chat saved before) has only the `</think>`.
The text stays whole everywhere it is kept (the conversation file, the export, what the model is
given back: those templates drop old reasoning themselves); this only says which part is which, so
the app can fold the reasoning away and copy the answer alone.
"""
from __future__ import annotations

from dataclasses import dataclass

OPEN, CLOSE = "<think>", "</think>"
QUOTES = "`'\"“‘"


@dataclass(frozen=True)
class Reasoned:
    reasoning: str | None              # None: no reasoning in the text
    answer: str
    thinking: bool = False             # the reasoning is not closed yet (the answer has not begun)


def split_reasoning(text: str) -> Reasoned:
    """`text` as reasoning and answer. Only a `<think>` at the very start (after white space) opens a
    reasoning, and only the first `</think>` closes it: a think tag quoted later in an answer is text."""
    start = text.lstrip()
    if start.startswith(OPEN):
        inner = start[len(OPEN):]
        end = inner.find(CLOSE)
        if end < 0:
            return Reasoned(inner.strip(), "", thinking=True)
        return Reasoned(inner[:end].strip(), inner[end + len(CLOSE):].lstrip())
    end = text.find(CLOSE)
    # Opened by the prompt: the reply starts inside it (a tag quoted in an answer, `</think>`, is text).
    if end > 0 and OPEN not in text[:end] and text[end - 1] not in QUOTES:
        return Reasoned(text[:end].strip(), text[end + len(CLOSE):].lstrip())
    return Reasoned(None, text)


def answer_part(text: str) -> str:
    """What the model answered, without its reasoning (what Copy copies)."""
    return split_reasoning(text).answer
