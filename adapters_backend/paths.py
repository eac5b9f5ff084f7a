"""Where LoRA Deck keeps things on disk (platformdirs locations, overridable by environment)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

APP = "loradeck"


def cache_dir() -> Path:
    """Re-creatable files: unpacked archives, converted adapters. Env LORADECK_CACHE_DIR overrides."""
    return _folder("LORADECK_CACHE_DIR", platformdirs.user_cache_dir(APP, appauthor=False), "cache folder")


def data_dir() -> Path:
    """The user's own data: adapter library, conversations, presets. Env LORADECK_DATA_DIR overrides
    (the app sets it from the folder chosen in Settings)."""
    return _folder("LORADECK_DATA_DIR", platformdirs.user_data_dir(APP, appauthor=False), "data folder")


def log_dir() -> Path:
    """The app's log file lives here (platformdirs' log folder). Env LORADECK_LOG_DIR overrides."""
    return _folder("LORADECK_LOG_DIR", platformdirs.user_log_dir(APP, appauthor=False), "log folder")


def _folder(variable: str, default: str, what: str) -> Path:
    """The folder `variable` names (else `default`), made if missing. One that cannot be made (a drive
    not plugged in, a file in its place, no permission) is a WriteFailed that says where it came from."""
    from .disk_space import WriteFailed, reason
    chosen = os.environ.get(variable)
    p = Path(chosen or default)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        origin = ""
        if chosen:
            origin = f"; it is set by {variable}"
            if variable == "LORADECK_DATA_DIR":
                origin += " (or chosen in the app's Settings)"
        raise WriteFailed(p, f"the {what} cannot be made: {reason(exc) or exc.strerror or exc}{origin}",
                          exc.errno) from None
    return p


# Names Windows reserves for devices in every folder, with or without an extension ("NUL.json").
_WINDOWS_DEVICES = re.compile(r"(?i)(CON|PRN|AUX|NUL|CONIN\$|CONOUT\$|(COM|LPT)[0-9\u00b9\u00b2\u00b3])(\..*)?")
_WINDOWS_FORBIDDEN = set('<>:"|?*\\/')


def unsafe_name_reason(part: str) -> str | None:
    """Why `part` cannot be one component of a path on every platform LoRA Deck runs on (None if it
    can): empty, "." or "..", a drive or stream (":"), a Windows device name (CON, NUL, COM1…),
    a trailing dot or space (Windows drops them, so two names would meet), control characters, or
    a character Windows forbids. Used for names that come from files and servers."""
    if part in ("", ".", ".."):
        return f"{part!r} is not a file name"
    if any(ord(c) < 32 for c in part):
        return "it contains control characters"
    bad = sorted(set(part) & _WINDOWS_FORBIDDEN)
    if bad:
        return f"it contains {' '.join(bad)}, which Windows does not allow in a file name"
    if part[-1] in ". ":
        return "it ends with a dot or a space, which Windows drops"
    if _WINDOWS_DEVICES.fullmatch(part.rstrip(". ")):
        return f"{part.split('.')[0]} is a reserved device name on Windows"
    return None
