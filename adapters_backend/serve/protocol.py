"""OpenAI's request fields -> engine inputs, and engine output -> OpenAI's response objects.

Unset sampling fields use LoRA Deck's own defaults (engines.base.SamplingParams: temperature 0.7,
top_p 0.95, top_k 40, min_p 0.05, repeat_penalty 1.1), so a request behaves like the desktop chat;
``max_tokens`` unset means "until the model stops or the context is full", as with OpenAI.
llama.cpp's extra knobs (top_k, min_p, repeat_penalty) are accepted as llama-server accepts them.
"""
from __future__ import annotations

import math
import time
import uuid

from ..engines.base import ChatMessage, SamplingParams
from .errors import ApiError
from .mix import MixItem, strip_tags

UNLIMITED = 1 << 30                      # the engine clamps max_tokens to what the context has left
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


# ---------------------------------------------------------------------------------------- requests
def _number(body: dict, key: str, lo: float, hi: float, integer: bool = False):
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not float(v).is_integer()):
        raise ApiError(f"'{key}' must be {'an integer' if integer else 'a number'}, got {v!r}", param=key,
                       code="invalid_value")
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ApiError(f"'{key}' must be between {lo:g} and {hi:g}, got {v!r}", param=key, code="invalid_value")
    return int(v) if integer else float(v)


def sampling(body: dict) -> SamplingParams:
    defaults = SamplingParams()
    if body.get("n") not in (None, 1):                  # one engine, one reply per request
        raise ApiError(f"only n=1 is supported, got {body.get('n')!r}", param="n", code="unsupported")
    if body.get("logprobs") not in (None, False, 0):
        raise ApiError("'logprobs' is not supported by loradeck serve", param="logprobs", code="unsupported")
    if body.get("tools") or body.get("functions"):
        raise ApiError("tool calling is not supported by loradeck serve", param="tools", code="unsupported")
    max_tokens = _number(body, "max_completion_tokens", 1, UNLIMITED, True)
    if max_tokens is None:
        max_tokens = _number(body, "max_tokens", 1, UNLIMITED, True)
    values = {
        "max_tokens": max_tokens or UNLIMITED,
        "temperature": _number(body, "temperature", 0, 2),
        "top_p": _number(body, "top_p", 0, 1),
        "top_k": _number(body, "top_k", 0, 1 << 20, True),
        "min_p": _number(body, "min_p", 0, 1),
        "repeat_penalty": _number(body, "repeat_penalty", 0, 10),
        "seed": _number(body, "seed", -(1 << 63), (1 << 63) - 1, True),
    }
    if values["seed"] is not None:
        values["seed"] = values["seed"] % (1 << 31)     # llama.cpp takes a 32-bit seed; -1 would mean random
    values["thinking"] = _thinking(body)
    return SamplingParams(**{k: (defaults.__dict__[k] if v is None else v) for k, v in values.items()})


def _thinking(body: dict) -> bool | None:
    """`chat_template_kwargs: {"enable_thinking": false}` (as llama-server and vLLM take it): a thinking
    model with the switch answers without reasoning first. Other template variables are refused."""
    kwargs = body.get("chat_template_kwargs")
    if kwargs is None:
        return None
    if not isinstance(kwargs, dict):
        raise ApiError("'chat_template_kwargs' must be an object", param="chat_template_kwargs",
                       code="invalid_value")
    unknown = sorted(k for k in kwargs if k != "enable_thinking")
    if unknown:
        raise ApiError(f"'chat_template_kwargs' may only hold 'enable_thinking' here, not {unknown[0]!r}",
                       param="chat_template_kwargs", code="unsupported")
    value = kwargs.get("enable_thinking")
    if value is not None and not isinstance(value, bool):
        raise ApiError(f"'enable_thinking' must be true or false, got {value!r}", param="chat_template_kwargs",
                       code="invalid_value")
    return value


def stop_strings(body: dict) -> tuple[str, ...]:
    stop = body.get("stop")
    if stop is None:
        return ()
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 16:
        raise ApiError("'stop' must be a string or a list of up to 16 strings", param="stop", code="invalid_value")
    return tuple(s for s in stop if s)


def _text_content(content, param: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):                       # [{"type": "text", "text": "..."}, ...]
        parts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ApiError(f"{param}[{j}]: only text parts are supported, got {kind!r}", param=param,
                               code="unsupported")
            parts.append(part["text"])
        return "\n".join(parts)
    raise ApiError(f"{param} must be a string or a list of text parts", param=param, code="invalid_value")


def chat_messages(body: dict) -> tuple[list[ChatMessage], list[MixItem]]:
    """The conversation without its <lora:…> tags, and the tags (in message order)."""
    messages = body.get("messages")
    if messages is None:
        raise ApiError("'messages' is required", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise ApiError("'messages' must be a non-empty list of {role, content} objects", param="messages",
                       code="invalid_value")
    out, tags = [], []
    for i, m in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ApiError(f"{param} must be an object with 'role' and 'content'", param=param, code="invalid_value")
        role = ROLES.get(m["role"]) if isinstance(m.get("role"), str) else None     # (a list is no dict key)
        if role is None:
            raise ApiError(f"{param}.role must be one of {', '.join(ROLES)}, got {m.get('role')!r}",
                           param=f"{param}.role", code="invalid_value")
        text, found = strip_tags(_text_content(m.get("content"), f"{param}.content"), f"{param}.content")
        out.append(ChatMessage(role, text))
        tags += found
    return out, tags


def completion_prompt(body: dict) -> tuple[str, list[MixItem]]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if prompt is None:
        raise ApiError("'prompt' is required", param="prompt", code="missing_required_parameter")
    if not isinstance(prompt, str):
        raise ApiError("'prompt' must be one string (token arrays and batches are not supported)", param="prompt",
                       code="invalid_value")
    if body.get("echo") or body.get("suffix"):
        raise ApiError("'echo' and 'suffix' are not supported by loradeck serve", param="echo", code="unsupported")
    return strip_tags(prompt, "prompt")


# --------------------------------------------------------------------------------------- responses
class Reply:
    """The ids and shapes of one response (chat or text completion, streamed or not)."""

    def __init__(self, kind: str, model: str):
        self.kind, self.model = kind, model
        self.id = ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())
        self.object = "chat.completion" if kind == "chat" else "text_completion"

    def _head(self, obj: str) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model,
                "system_fingerprint": None}

    def _choice(self, text: str | None, finish: str | None, delta: dict | None = None,
                reasoning: str | None = None) -> dict:
        if self.kind == "chat":
            key = "delta" if delta is not None else "message"
            body = delta if delta is not None else {"role": "assistant", "content": text}
            if reasoning and delta is None:
                body["reasoning_content"] = reasoning
            return {"index": 0, key: body, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}

    def full(self, text: str, finish: str, usage: dict, reasoning: str | None = None) -> dict:
        """`reasoning`: a thinking model's, apart from its answer (serve/reasoning.py)."""
        return {**self._head(self.object), "choices": [self._choice(text, finish, reasoning=reasoning)],
                "usage": usage}

    def chunk(self, text: str | None, finish: str | None = None, *, first: bool = False,
              reasoning: str | None = None) -> dict:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        if self.kind == "chat":
            delta = {} if text is None else {"content": text}
            if reasoning:
                delta["reasoning_content"] = reasoning
            if first:
                delta = {"role": "assistant", "content": ""}
            return {**self._head(obj), "choices": [self._choice(None, finish, delta)]}
        return {**self._head(obj), "choices": [self._choice(text, finish)]}

    def usage_chunk(self, usage: dict) -> dict:
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        return {**self._head(obj), "choices": [], "usage": usage}


def usage(prompt_tokens: int | None, completion_tokens: int, cached_tokens: int | None = None) -> dict:
    """OpenAI's usage object; `cached_tokens`: prompt tokens the engine took from a KV cache of the
    request's own mix (OpenAI reports its prompt cache the same way)."""
    p = int(prompt_tokens or 0)
    out = {"prompt_tokens": p, "completion_tokens": int(completion_tokens), "total_tokens": p + int(completion_tokens)}
    if cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": int(cached_tokens)}
    return out
