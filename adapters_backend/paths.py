"""Where LoRA Deck keeps things on disk (platformdirs locations, overridable by environment)."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "loradeck"


def cache_dir() -> Path:
    """Re-creatable files: unpacked archives, converted adapters. Env LORADECK_CACHE_DIR overrides."""
    p = Path(os.environ.get("LORADECK_CACHE_DIR") or platformdirs.user_cache_dir(APP, appauthor=False))
    p.mkdir(parents=True, exist_ok=True)
    return p


def data_dir() -> Path:
    """The user's own data: adapter library, conversations, presets. Env LORADECK_DATA_DIR overrides."""
    p = Path(os.environ.get("LORADECK_DATA_DIR") or platformdirs.user_data_dir(APP, appauthor=False))
    p.mkdir(parents=True, exist_ok=True)
    return p
