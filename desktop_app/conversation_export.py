"""A conversation as a Markdown document (Chat → Export chat…), to read, keep or share outside LoRA Deck.

Plain Python: the chat hands over the conversation; the dialog that asks where is the caller's. Each
answer says which model and mix wrote it, as the chat shows it, and whether it was cut short; a question
left unanswered says why.
"""
from __future__ import annotations

import re
import time

from .conversation_store import INTERRUPTED, Conversation
from .reasoning import split_reasoning

ROLE_TITLES = {"user": "You", "assistant": "Assistant"}
# An answer that did not end by itself: not to be taken for the model's whole answer.
CUT_SHORT = {"length": "Cut at the token limit", "cancelled": "Stopped",
             INTERRUPTED: "Interrupted: LoRA Deck ended while writing it"}
_UNSAFE = re.compile(r'[<>:"/\\|?*\x00-\x1f]+')    # not allowed in a file name on some system


def file_name(conv: Conversation) -> str:
    """A file name for the export of `conv`: its title, with what some file system refuses left out."""
    from adapters_backend.paths import unsafe_name_reason

    stem = _UNSAFE.sub(" ", conv.title).strip(" .")[:80].strip(" .") or "chat"
    name = f"{stem}.md"
    return name if unsafe_name_reason(name) is None else f"chat {name}"     # CON.md, NUL.md … on Windows


def to_markdown(conv: Conversation, exported: float | None = None) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() if exported is None else exported))
    lines = [f"# {conv.title}", "", f"_Exported from LoRA Deck on {when}_"]
    if conv.system_prompt.strip():
        lines += ["", "## System prompt", "", conv.system_prompt.strip()]
    for m in conv.messages:
        if m.role not in ROLE_TITLES:
            continue
        heading = ROLE_TITLES[m.role]
        if m.role == "assistant":
            details = [str(m.info[k]) for k in ("model", "mix") if m.info.get(k)]
            if details:
                heading += " — " + " · ".join(details)
        lines += ["", f"## {heading}", "", *_body(m.content, m.role)]
        if m.role == "assistant" and m.info.get("finish") in CUT_SHORT:
            lines += ["", f"> {CUT_SHORT[m.info['finish']]}"]
        for key, what in (("unanswered", "Not answered"), ("error", "Stopped")):
            if m.info.get(key):
                lines += ["", f"> {what}: {m.info[key]}"]
    return "\n".join(lines) + "\n"


def _body(content: str, role: str) -> list[str]:
    """A message's text; a thinking model's reasoning folded (an HTML <details>, which Markdown viewers
    such as GitHub's show closed) before the answer."""
    parts = split_reasoning(content) if role == "assistant" else None
    if parts is None or parts.reasoning is None:
        return [content.strip()]
    folded = ["<details><summary>Reasoning</summary>", "", parts.reasoning, "", "</details>"]
    return folded + (["", parts.answer.strip()] if parts.answer.strip() else [])


__all__ = ["file_name", "to_markdown"]
