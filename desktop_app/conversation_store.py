"""Conversations kept between runs: one JSON file per conversation in `<data dir>/conversations/`.

Plain Python (no Qt): the chat view changes a `Conversation`, then asks the store to save it; saves
are atomic (adapters_backend.atomic), so a crash mid-save keeps the previous version.

While an answer is written, the conversation is saved as LoRA Deck should find it if it ended right
then (a crash, a killed process, a power cut): the question, and the answer so far marked
"interrupted", which the chat offers to continue (`to_json(answering=…)`).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from adapters_backend.kinds import is_count, is_number

SCHEMA = "loradeck.conversation/1"
INTERRUPTED = "interrupted"          # an answer's "finish" when LoRA Deck ended while writing it
CLOSED_UNANSWERED = "LoRA Deck closed before answering it"
# What an answer's info says of the finished answer, unknown for one cut by the end of LoRA Deck.
_KNOWN_AT_END = ("tokens", "tokens_per_second", "gui_tokens", "tokens_before", "left_out", "error", "finish")


@dataclass
class Message:
    role: str                    # "system" | "user" | "assistant"
    content: str
    info: dict = field(default_factory=dict)   # for replies: model, mix, tokens, tokens/s, seed


@dataclass
class Conversation:
    id: str
    title: str = "New chat"
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    system_prompt: str = ""
    messages: list[Message] = field(default_factory=list)
    draft: str = ""              # typed in the message box, not sent yet

    @classmethod
    def new(cls, system_prompt: str = "") -> "Conversation":
        return cls(id=os.urandom(6).hex(), system_prompt=system_prompt)

    def chat_messages(self) -> list[tuple[str, str]]:
        """(role, content) pairs as the engine gets them: system prompt first, if any."""
        out = [("system", self.system_prompt)] if self.system_prompt.strip() else []
        out += [(m.role, m.content) for m in self.messages if m.role in ("user", "assistant")]
        return out

    def to_json(self, answering: Message | None = None) -> dict:
        """`answering`: the answer being written (a new one, or the last message being continued), kept
        as it is so far with finish "interrupted"; before its first word, the question says it was not
        answered. What was asked is never lost with the process."""
        # By hand, not dataclasses.asdict: its deep copy took half the time of saving a long chat.
        msgs = [{"role": m.role, "content": m.content, "info": dict(m.info)} for m in self.messages]
        d = {"id": self.id, "title": self.title, "created": self.created, "updated": self.updated,
             "system_prompt": self.system_prompt, "messages": msgs, "draft": self.draft, "schema": SCHEMA}
        if answering is None:
            return d
        if self.messages and self.messages[-1] is answering:
            msgs[-1] = _interrupted(answering)
        elif answering.content:
            msgs.append(_interrupted(answering))
        elif msgs and msgs[-1]["role"] == "user":
            msgs[-1]["info"] = {**msgs[-1]["info"], "unanswered": CLOSED_UNANSWERED}
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Conversation":
        """A conversation from its file, read as untrusted: a value of another kind than this version
        writes (a damaged or hand-edited file) is left out or replaced, never the reason the whole chat
        is not shown; a message without text is left out."""
        msgs = [Message(role=m["role"] if isinstance(m.get("role"), str) else "user", content=_text(m.get("content")),
                        info=_info(m.get("info")))
                for m in (d.get("messages") if isinstance(d.get("messages"), list) else [])
                if isinstance(m, dict) and _text(m.get("content"), None) is not None]
        return cls(id=str(d["id"]), title=_text(d.get("title")) or "Chat", created=_number(d.get("created")),
                   updated=_number(d.get("updated")), system_prompt=_text(d.get("system_prompt")),
                   messages=msgs, draft=_text(d.get("draft")))


# What an answer's info holds, by kind (chat_view writes it, chat_reply.info_text reads it). Keys this
# version does not know are kept when they are plain values (a later version's, written back as read).
def _text_kind(v) -> bool:
    return isinstance(v, str)


def _maybe_count(v) -> bool:
    return v is None or is_count(v)


def _plain(v) -> bool:
    return v is None or isinstance(v, str | bool) or is_number(v)


_INFO_KINDS = {"model": _text_kind, "mix": _text_kind, "finish": _text_kind, "error": _text_kind,
               "unanswered": _text_kind, "seed": _maybe_count, "max_tokens": _maybe_count, "tokens": is_count,
               "gui_tokens": is_count, "left_out": is_count, "tokens_before": is_count, "tokens_per_second": is_number}


def _info(raw) -> dict:
    if not isinstance(raw, dict):
        return {}
    return {k: v for k, v in raw.items() if _INFO_KINDS.get(k, _plain)(v)}


def _text(value, default: str | None = "") -> str | None:
    """A text field as written: a string, or a number's digits; anything else is `default`."""
    if isinstance(value, str):
        return value
    return str(value) if is_number(value) else default


def _number(value) -> float:
    return float(value) if is_number(value) else 0.0


def _interrupted(answer: Message) -> dict:
    info = {k: v for k, v in answer.info.items() if k not in _KNOWN_AT_END}
    return {"role": answer.role, "content": answer.content, "info": {**info, "finish": INTERRUPTED}}


class ConversationStore:
    def __init__(self, folder):
        """`folder`: a path, or a function returning one (resolved on first use, after start-up)."""
        self._folder = folder

    @property
    def folder(self) -> Path:
        if callable(self._folder):
            self._folder = self._folder()
        return Path(self._folder)

    def _file(self, conv_id: str) -> Path:
        return self.folder / f"{conv_id}.json"

    def files(self) -> list[Path]:
        """The saved conversations' files (not read yet)."""
        return sorted(self.folder.glob("*.json")) if self.folder.is_dir() else []

    def read(self, f: Path) -> Conversation | None:
        """The conversation in `f`, or None for a broken or foreign file."""
        from adapters_backend.atomic import read_json  # json is not needed to paint the window
        d = read_json(f)
        if not (isinstance(d, dict) and d.get("schema") == SCHEMA and "id" in d):
            return None
        try:
            conv = Conversation.from_json(d)
        except (TypeError, ValueError, KeyError):
            return None
        # The file's name is the id: the one inside is only text, and a saved or deleted
        # conversation must stay this file (an id of '../../x' would reach outside the folder).
        conv.id = f.stem
        return conv

    def load_all(self) -> list[Conversation]:
        """Every readable conversation, most recently updated first (broken files are skipped)."""
        out = [c for c in map(self.read, self.files()) if c is not None]
        out.sort(key=lambda c: -c.updated)
        return out

    def save(self, conv: Conversation, touch: bool = True, answering: Message | None = None) -> None:
        """Write `conv`; `touch`: it changed now (a rename is not a change of the conversation);
        `answering`: the answer being written (see `Conversation.to_json`)."""
        from adapters_backend.atomic import write_text_atomic
        if touch:
            conv.updated = time.time()
        # One line: json's C encoder (an indented file goes through its Python one, 3× slower), as this
        # runs on the GUI thread while an answer is written.
        write_text_atomic(self._file(conv.id), json.dumps(conv.to_json(answering), ensure_ascii=False))

    def delete(self, conv_id: str) -> None:
        from adapters_backend.disk_space import writing
        path = self._file(conv_id)
        try:
            with writing(path):
                path.unlink()
        except FileNotFoundError:
            pass
