"""A thinking model's reasoning apart from its answer, in `loradeck serve`'s chat replies.

Qwen3, QwQ, DeepSeek-R1 and their fine-tunes write `<think> … </think>` before the answer (some
templates open the `<think>` in the prompt: the engines then start the reply with it). As
llama-server does by default (`reasoning_format` "deepseek"), the reply's `reasoning_content` holds the
reasoning and `content` the answer alone, whole or streamed; `reasoning_format: "none"` keeps the
reply whole, tags and all. Only a `<think>` at the very start opens a reasoning, and only the first `</think>` ends it.
"""
from __future__ import annotations

from ..chat.template import THINK_CLOSE as CLOSE
from ..chat.template import THINK_OPEN as OPEN
from .errors import ApiError

SPLIT_FORMATS = ("deepseek", "auto")        # llama-server's names; "auto" is what it does by default
FORMATS = ("none", *SPLIT_FORMATS)


def splits_reasoning(body: dict) -> bool:
    """Whether the request's reply keeps reasoning apart (`reasoning_format`, "deepseek" unless set)."""
    value = body.get("reasoning_format", "deepseek")
    if value not in FORMATS:
        raise ApiError(f"'reasoning_format' must be one of {', '.join(FORMATS)}, got {value!r}",
                       param="reasoning_format", code="invalid_value")
    return value in SPLIT_FORMATS


def opened_by(messages) -> bool:
    """Whether the reply starts inside a reasoning: the conversation ends with the assistant's text
    that opened one and did not close it (a prefill). A reasoning the template opens for a new answer
    comes as the reply's start from the engine (`<think>`, RenderedPrompt.opened)."""
    if messages and getattr(messages[-1], "role", None) == "assistant":
        text = messages[-1].content.lstrip()
        return text.startswith(OPEN) and CLOSE not in text
    return False


class ReasoningSplit:
    """Fed the reply piece by piece (`push`), returns (reasoning, content) pieces; `flush` at the end.
    Text that may still turn out to be a tag is held back until the next piece tells."""

    def __init__(self, opened: bool = False):
        self._state = "reasoning" if opened else "start"
        self._held = ""
        self._reasoning_begun = False           # its leading white space is left out, as llama-server does

    def push(self, text: str, end: bool = False) -> tuple[str, str]:
        """`end`: the reply ends with `text` (what was held back comes out too, as `flush`)."""
        if end:
            (reasoning, content), (more_reasoning, more) = self.push(text), self.flush()
            return reasoning + more_reasoning, content + more
        buf, self._held = self._held + text, ""
        reasoning = content = ""
        while buf:
            if self._state == "start":          # before anything but white space
                rest = buf.lstrip()
                if rest.startswith(OPEN):
                    self._state, buf = "reasoning", rest[len(OPEN):]
                elif not rest or OPEN.startswith(rest):
                    self._held, buf = buf, ""   # white space, or "<thi…" that may become the tag
                else:
                    self._state = "content"
            elif self._state == "reasoning":
                at = buf.find(CLOSE)
                if at >= 0:
                    reasoning += buf[:at]
                    self._state, buf = "between", buf[at + len(CLOSE):]
                    continue
                keep = _partial_tag(buf, CLOSE)
                reasoning += buf[:len(buf) - keep]
                self._held, buf = buf[len(buf) - keep:], ""
            elif self._state == "between":      # white space between the reasoning and the answer
                buf = buf.lstrip()
                if buf:
                    self._state = "content"
            else:
                content, buf = content + buf, ""
        return self._reasoning(reasoning), content

    def flush(self) -> tuple[str, str]:
        """What was held back, once the reply has ended."""
        held, self._held = self._held, ""
        if self._state == "reasoning":
            return self._reasoning(held), ""
        return "", "" if self._state == "between" else held

    def _reasoning(self, text: str) -> str:
        if not self._reasoning_begun:
            text = text.lstrip()
            self._reasoning_begun = bool(text)
        return text


def _partial_tag(text: str, tag: str) -> int:
    """The length of the longest end of `text` that is the beginning of `tag` (it may be cut there)."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0
