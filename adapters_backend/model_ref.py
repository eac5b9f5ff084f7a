"""What a model or adapter reference the user typed means: a server URL, a Hub id, a local path;
which engine a model needs; "PATH:STRENGTH" arguments. Plain string rules, no heavy imports (the
desktop app asks these while painting its first window).
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import UsageError

# A Hugging Face repository id: "owner/name", each part of letters, digits, '-', '_' and '.', not
# starting with '-' or '.' (huggingface_hub's validate_repo_id rules, without its import cost).
HUB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}")
REMOTE_ENGINES = ("llama-server", "vllm", "lorax")


def is_url(text: object) -> bool:
    """An http(s) address (a serving system), as opposed to a file, folder or Hub id."""
    return isinstance(text, str) and text.strip().lower().startswith(("http://", "https://"))


def is_hub_id(text: object) -> bool:
    """"owner/name" with Hub-legal characters that is not a path existing here."""
    if not isinstance(text, str):
        return False
    text = text.strip()
    return bool(HUB_ID_RE.fullmatch(text)) and ".." not in text and not Path(text).expanduser().exists()


def engine_for(model: str | Path) -> str:
    """The engine a model needs: a .gguf file → llama.cpp; an HF folder or Hub id → torch; a server
    address → llama-server (the user may say vllm or lorax instead)."""
    text = str(model)
    if is_url(text):
        return "llama-server"
    if text.lower().endswith(".gguf"):
        return "llama.cpp"
    p = Path(text).expanduser()
    if p.is_dir() or is_hub_id(text):
        return "torch"
    return "llama.cpp"


def split_strength(text: str, default: float = 1.0) -> tuple[str, float]:
    """"dir/adapter:0.5" → ("dir/adapter", 0.5). Without a numeric tail the strength is `default`, so
    "C:\\\\x" and names with colons still work. UsageError for a tail that is a number but not finite
    ("x:nan", "x:inf")."""
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            value = float(tail)
        except ValueError:
            return text, default
        if value != value or value in (float("inf"), float("-inf")):
            raise UsageError(f"the strength in {text!r} is not a finite number")
        return head, value
    return text, default
