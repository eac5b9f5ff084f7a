"""Turn chat messages into the prompt text a model expects.

The template comes from the model's GGUF metadata (`tokenizer.chat_template`, Jinja), rendered with
llama-cpp-python's `Jinja2ChatFormatter` (the sandboxed environment with the transformers-compatible
extras). A model without one gets a plain "User: / Assistant:" transcript and a note saying so.
Templates that refuse a system role get the system text folded into the first user turn.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import EngineError

FALLBACK_TEMPLATE = (
    "{{ bos_token }}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% else %}Assistant: {{ m['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
FALLBACK_STOPS = ("\nUser:",)
FALLBACK_NOTE = ("This model has no chat template in its GGUF file, so LoRA Deck writes the conversation as a "
                 "plain 'User: … / Assistant: …' transcript. Base (non-chat) models often answer poorly.")


@dataclass(frozen=True)
class RenderedPrompt:
    text: str
    stops: tuple[str, ...]             # stop strings besides the model's end-of-generation tokens
    add_bos: bool                      # tokenizer should add BOS (False: the template wrote it)


class ChatTemplate:
    def __init__(self, template: str, *, bos_token: str, eos_token: str, source: str, note: str = "",
                 stops: Sequence[str] = ()):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.source = source           # "gguf" | "fallback"
        self.note = note
        self.template = template
        self._stops = tuple(stops)
        try:
            self._formatters = {flag: Jinja2ChatFormatter(template=template, eos_token=eos_token,
                                                          bos_token=bos_token, add_generation_prompt=flag)
                                for flag in (True, False)}
        except Exception as exc:  # a broken template in a GGUF is the file's fault
            raise EngineError(f"the model's chat template cannot be parsed ({exc})") from exc

    def render(self, messages: Sequence, add_generation_prompt: bool = True) -> RenderedPrompt:
        """The prompt for `messages`; without the generation prompt it is the conversation so far (what
        the next prompt starts with, for reading it ahead)."""
        formatter = self._formatters[add_generation_prompt]
        dicts = [{"role": _get(m, "role"), "content": _get(m, "content")} for m in messages]
        try:
            result = formatter(messages=dicts)
        except Exception as exc:  # templates raise_exception() on inputs they refuse
            folded = _fold_system(dicts)
            if folded is None:
                raise EngineError(f"the model's chat template refused this conversation: {exc}") from exc
            try:
                result = formatter(messages=folded)
            except Exception as exc2:
                raise EngineError(f"the model's chat template refused this conversation: {exc2}") from exc2
        stops = tuple(s for s in self._stops if s)
        return RenderedPrompt(result.prompt, stops, add_bos=not result.added_special)


def _get(m, key: str) -> str:
    return str(m[key] if isinstance(m, Mapping) else getattr(m, key))


def _fold_system(messages: list[dict]) -> list[dict] | None:
    """System text moved into the first user message (for templates without a system role)."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if not system:
        return None
    text = "\n\n".join(system)
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{text}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": text}, *rest]


def template_from_metadata(metadata: Mapping[str, str], *, bos_token: str, eos_token: str) -> ChatTemplate:
    """The GGUF's own template when it has one, else the plain transcript with a note."""
    template = metadata.get("tokenizer.chat_template")
    if template and template.strip():
        return ChatTemplate(template, bos_token=bos_token, eos_token=eos_token, source="gguf")
    return ChatTemplate(FALLBACK_TEMPLATE, bos_token=bos_token, eos_token=eos_token, source="fallback",
                        note=FALLBACK_NOTE, stops=FALLBACK_STOPS)
