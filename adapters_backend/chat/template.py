"""Turn chat messages into the prompt text a model expects.

The template comes from the model's GGUF metadata (`tokenizer.chat_template`, Jinja), rendered with
llama-cpp-python's `Jinja2ChatFormatter` (the sandboxed environment with the transformers-compatible
extras) in a helper process with a time and memory limit (template_sandbox.py): a template is a
program the model file brings. A model without one gets a plain "User: / Assistant:" transcript (our
own, rendered here) and a note saying so. Templates that refuse a system role get the system text
folded into the first user turn.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import EngineError
from .template_sandbox import SANDBOX, TemplateError, TemplateLimitError, template_variables

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
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"     # a thinking model's reasoning, between them
FALLBACK_NOTE = ("This model has no chat template in its GGUF file, so LoRA Deck writes the conversation as a "
                 "plain 'User: … / Assistant: …' transcript. Base (non-chat) models often answer poorly.")


@dataclass(frozen=True)
class RenderedPrompt:
    text: str
    stops: tuple[str, ...]             # stop strings besides the model's end-of-generation tokens
    add_bos: bool                      # tokenizer should add BOS (False: the template wrote it)
    continues: bool = False            # it ends inside the assistant's last message, to be continued

    @property
    def opened(self) -> str:
        """The reasoning this prompt opens for a new answer (`<think>` and the white space after it, at
        its end: DeepSeek-R1's templates), "" if none. The reply goes on inside it, so an engine hands it
        out as the reply's start: the answer then reads whole (`<think> … </think>` and the answer), is
        folded as any other reasoning, and is continued from the prompt it was written after."""
        if self.continues:                     # the assistant's text already holds what it opened
            return ""
        _head, tag, tail = self.text.rpartition(THINK_OPEN)
        return tag + tail if tag and not tail.strip() else ""


_TRIAL = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello."},
          {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "How are you?"}]


class ChatTemplate:
    def __init__(self, template: str, *, bos_token: str, eos_token: str, source: str, note: str = "",
                 stops: Sequence[str] = ()):
        """`source`: "fallback" for LoRA Deck's own template (rendered in this process); anything else
        ("gguf", "hf", …) comes with a model and runs in the template sandbox. EngineError when it does
        not compile, or runs past a limit on a short trial conversation (a hostile template)."""
        self.source = source
        self.note = note
        self.template = template
        # A thinking model that can be asked to answer at once (Qwen3 and its fine-tunes; SmolLM3 …).
        self.thinking_switch = "enable_thinking" in template
        self._stops = tuple(stops)
        self._tokens = (bos_token, eos_token)
        self._local = None
        if source == "fallback":
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
            self._local = {flag: Jinja2ChatFormatter(template=template, eos_token=eos_token, bos_token=bos_token,
                                                     add_generation_prompt=flag) for flag in (True, False)}
            return
        try:                                     # compiles it, and tries it on a short conversation
            SANDBOX.render(template, bos_token, eos_token, True, _TRIAL)
        except TemplateError as exc:
            if exc.stage == "parse":             # a broken template in a GGUF is the file's fault
                raise EngineError(f"the model's chat template cannot be parsed ({exc})") from exc
            # Refusing the trial conversation (no system role, say) is its right: render() says it.
        except TemplateLimitError as exc:
            raise EngineError(f"the model's chat template cannot be used: {exc} (a damaged or hostile "
                              "template)") from exc

    def render(self, messages: Sequence, add_generation_prompt: bool = True,
               thinking: bool | None = None) -> RenderedPrompt:
        """The prompt for `messages`; without the generation prompt it is the conversation so far (what
        the next prompt starts with, for reading it ahead). When the last message is the assistant's
        (an answer cut short, or words to start the answer with), the prompt asks to go on with it: it
        ends where that message's text ends, without the template's end of turn (`continues`).
        `thinking`: False asks a thinking model with a switch to answer without reasoning first."""
        dicts = [{"role": _get(m, "role"), "content": _get(m, "content")} for m in messages]
        variables = {"enable_thinking": thinking} if thinking is not None and self.thinking_switch else {}
        if add_generation_prompt and dicts and dicts[-1]["role"] == "assistant" and dicts[-1]["content"]:
            closed = self.render(messages, add_generation_prompt=False, thinking=thinking)
            return RenderedPrompt(_cut_after(closed.text, dicts[-1]["content"]), closed.stops, closed.add_bos,
                                  continues=True)
        try:
            try:
                text, added_special = self._render(dicts, add_generation_prompt, variables)
            except TemplateError:                # templates raise_exception() on inputs they refuse
                folded = _fold_system(dicts)
                if folded is None:
                    raise
                text, added_special = self._render(folded, add_generation_prompt, variables)
        except TemplateError as exc:
            raise EngineError(f"the model's chat template refused this conversation: {exc}") from exc
        except TemplateLimitError as exc:
            raise EngineError(f"the model's chat template failed on this conversation: {exc} (a damaged or "
                              "hostile template)") from exc
        stops = tuple(s for s in self._stops if s)
        return RenderedPrompt(text, stops, add_bos=not added_special)

    def _render(self, dicts: list[dict], add_generation_prompt: bool, variables: dict) -> tuple[str, bool]:
        if self._local is not None:
            try:
                result = self._local[add_generation_prompt](messages=dicts, **template_variables(variables))
            except Exception as exc:
                raise TemplateError(str(exc), "render") from exc
            return result.prompt, result.added_special
        return SANDBOX.render(self.template, *self._tokens, add_generation_prompt, dicts, variables)


def _cut_after(text: str, answer: str) -> str:
    """`text` (a conversation the template closed) up to the end of its last message, `answer`. Some
    templates rewrite a thinking model's `<think>` part (Qwen3's tidies its white space): then the
    part after `</think>` is what must end the prompt."""
    for shown in (answer, answer.rstrip(), answer.strip(), answer.rsplit(THINK_CLOSE, 1)[-1].strip()):
        at = text.rfind(shown) if shown else -1
        if at >= 0:
            return text[:at + len(shown)]
    raise EngineError("the model's chat template changes the text of an answer (it does not write it as "
                      "it is), so an answer cannot be continued with this model")


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
    """The model's own template (`tokenizer.chat_template`) when it has one that can be used, else the
    plain transcript with a note saying why."""
    template = metadata.get("tokenizer.chat_template")
    note = FALLBACK_NOTE
    if template and template.strip():
        try:
            return ChatTemplate(template, bos_token=bos_token, eos_token=eos_token, source="gguf")
        except EngineError as exc:           # a broken or hostile template in the file: chat anyway, and say so
            why = str(exc)
            note = (f"{why[:1].upper()}{why[1:]}, so LoRA Deck writes the conversation as a plain 'User: … / "
                    "Assistant: …' transcript.")
    return ChatTemplate(FALLBACK_TEMPLATE, bos_token=bos_token, eos_token=eos_token, source="fallback",
                        note=note, stops=FALLBACK_STOPS)
