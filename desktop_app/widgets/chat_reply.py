"""The chat's replies as text: the reply being written, the info line under each answer, a chat's title."""
from __future__ import annotations

from ..conversation_store import INTERRUPTED, Message
from ..stream_collector import Arrival
from .message_widget import MessageWidget


class StreamedReply:
    """The reply being written, as the StreamCollector's pane: the text grows, the info line shows
    the speed at which tokens arrive."""

    def __init__(self, msg: Message, widget: MessageWidget):
        self.msg = msg
        self.widget: MessageWidget | None = widget
        self.arrival: Arrival | None = None

    def detach(self) -> None:
        """Its widget is going (another chat opened): the rest of the text still goes to the message."""
        self.widget = None

    def append(self, text: str) -> None:
        self.msg.content += text
        if self.widget is None:
            return
        self.widget.set_text(self.msg.content)
        tps = self.arrival.tokens_per_second
        if tps:
            self.widget.set_info(f"{self.arrival.tokens} tokens · {tps:.1f} tok/s")

    def set_info(self, text: str) -> None:
        if self.widget is not None:
            self.widget.set_info(text)


def title_from(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 40 else line[:39] + "…"


def info_text(info: dict) -> str:
    if not info:
        return ""
    parts = []
    if info.get("mix"):
        parts.append(info["mix"])
    if info.get("tokens") is not None:
        parts.append(f"{info['tokens']} tokens")
    if info.get("tokens_per_second"):
        parts.append(f"{info['tokens_per_second']:.1f} tok/s")
    if info.get("finish") == "cancelled":
        parts.append("stopped")
    elif info.get("finish") == INTERRUPTED:
        parts.append("interrupted")                 # LoRA Deck ended while writing it
    elif info.get("finish") == "length":      # cut short: say by what, so it is not taken for the answer
        limit = info.get("max_tokens")
        parts.append("cut at Max tokens" if isinstance(limit, int) and (info.get("tokens") or 0) >= limit
                     else "cut: the context is full")
    if info.get("error"):
        parts.append(f"failed: {info['error']}")
    return " · ".join(parts)


def continued_info(before: dict, now: dict) -> dict:
    """The info of an answer being continued (Continue on an answer cut short): it keeps what
    it was written with, names a second model or mix when the rest is written with another, and counts
    its tokens on (`tokens_before`, added up when the continuation ends)."""
    info = {k: v for k, v in before.items() if k != "error"}
    written = before.get("tokens") if isinstance(before.get("tokens"), int) else 0
    info["tokens_before"] = written
    for key in ("model", "mix"):
        if now.get(key) != before.get(key):
            info[key] = f"{before.get(key) or '—'}, then {now.get(key) or '—'}"
    if isinstance(now.get("max_tokens"), int):        # "cut at Max tokens" compares the whole answer with it
        info["max_tokens"] = written + now["max_tokens"]
    return info
