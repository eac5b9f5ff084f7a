"""JSON that LoRA Deck did not write: adapter and model configs, weight indexes, safetensors headers,
files from the Hub. Parsed here, so every way such a file breaks Python's `json` is one error.

Python's parser raises more than `ValueError` on hostile input: arrays nested 100,000 deep raise
`RecursionError`, bytes that are not UTF-8 `UnicodeDecodeError`; a number of more than 4,300 digits is
a `ValueError` only by luck of int's limit; and a `\\ud800` escape gives a string with a lone surrogate
that parses but fails later, far from the file, when it is printed or written. Each is a
`JsonInputError` (a ValueError) here, and callers name the file in their own error.
"""
from __future__ import annotations

import json
import os
import re

MAX_JSON_BYTES = 16 << 20       # a real config, weight index or header is kilobytes to a few megabytes
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")    # a \uD800…\uDFFF escape: maybe a lone surrogate


class JsonInputError(ValueError):
    """Not JSON LoRA Deck can use; the text says why."""


def parse_json(raw: bytes | bytearray | str) -> object:
    """The value of a JSON text (bytes are read as UTF-8)."""
    try:
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        data = json.loads(text)
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(data, ensure_ascii=False).encode("utf-8")   # a lone surrogate cannot be encoded
    except RecursionError:
        raise JsonInputError("nested too deeply") from None
    except (UnicodeError, ValueError) as exc:   # ValueError: bad JSON, or a number of over 4,300 digits
        raise JsonInputError(str(exc)) from None
    return data


def read_json_file(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES) -> object:
    """The value of a JSON file of at most `max_bytes`. OSError when it cannot be read."""
    with open(path, "rb") as f:
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise JsonInputError(f"is larger than {max_bytes:,} bytes, far more than such a file holds")
    return parse_json(raw)


def read_json_object(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """`read_json_file` of a file that must hold a JSON object."""
    data = read_json_file(path, max_bytes)
    if not isinstance(data, dict):
        raise JsonInputError(f"must hold a JSON object, not {type(data).__name__}")
    return data


__all__ = ["MAX_JSON_BYTES", "JsonInputError", "parse_json", "read_json_file", "read_json_object"]
