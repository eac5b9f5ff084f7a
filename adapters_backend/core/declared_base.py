"""The base model an adapter says it was trained on (PEFT's base_model_name_or_path, a GGUF's
general.base_model.*): is it this model, and which model family is it?

The family comes from that base's config.json — a local folder, or the copy in the Hugging Face
cache (every transformers/PEFT user who loaded the base has it; LoRA Deck's Hub browser fetches it
too: hub.details.fetch_declared_base_config). Nothing here touches the network.
"""
from __future__ import annotations

import logging
from pathlib import Path

from ..json_input import JsonInputError, read_json_file
from ..model_ref import is_hub_id

log = logging.getLogger(__name__)
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def _norm(repo: str) -> str:
    return repo.strip().removeprefix("https://huggingface.co/").strip("/").lower()


def same_model(declared: str, base) -> bool:
    """True when `declared` names the base itself or a model it derives from (GGUF general.base_model,
    an HF folder's _name_or_path), or the same file/folder."""
    d = _norm(declared)
    known = [_norm(u) for u in base.upstream_ids]
    if base.name:
        known.append(_norm(base.name))
    if any(d == k or d.split("/")[-1] == k.split("/")[-1] for k in known if k):
        return True
    if base.path is not None:
        try:
            return Path(declared).expanduser().resolve() == Path(base.path).resolve()
        except (OSError, ValueError):
            return False
    return False


def _config_of(declared: str) -> Path | None:
    p = Path(declared).expanduser()
    try:
        if p.is_dir() and (p / "config.json").is_file():
            return p / "config.json"
    except OSError:
        return None
    if not is_hub_id(declared):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        from ..hub.client import cache_dir
        found = try_to_load_from_cache(declared.strip(), "config.json", cache_dir=cache_dir())
    except Exception as exc:  # a broken cache only means "unknown"
        log.debug("no cached config for %s: %s", declared, exc)
        return None
    return Path(found) if isinstance(found, str) else None


def declared_architecture(declared: str) -> str | None:
    """The HF model_type of the declared base (e.g. "qwen2"), when its config.json is at hand."""
    cfg = _config_of(declared)
    if cfg is None:
        return None
    try:
        data = read_json_file(cfg, MAX_CONFIG_BYTES)
    except (OSError, JsonInputError):
        return None
    if not isinstance(data, dict):
        return None
    model_type = data.get("model_type")
    text = data.get("text_config")
    if isinstance(text, dict) and isinstance(text.get("model_type"), str) and not data.get("num_hidden_layers"):
        model_type = text["model_type"]
    return model_type if isinstance(model_type, str) else None
