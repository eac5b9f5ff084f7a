"""Names from the Hub that become paths in the cache: repository ids, file names, revisions, commits.

A server (or a man in the middle of a mirror) decides the file names in a listing, the commit id and
the ETag; the user types repository ids and revisions. Each ends up joined under the cache folder
(`snapshots/<commit>/<file>`, `refs/<revision>`, `blobs/<etag>`), so each is checked first — the same
rules on every platform, so a repository behaves the same everywhere: no absolute paths, no `.` or `..`
parts, no backslashes, no drive letters or other `:`, no characters Windows forbids, no trailing dots
or spaces, no reserved device names (CON, NUL, COM1 …).
"""
from __future__ import annotations

import re

from ..errors import HubError

_WINDOWS_FORBIDDEN = set('<>:"\\|?*') | {chr(i) for i in range(32)} | {"\x7f"}
_RESERVED = ({"con", "prn", "aux", "nul", "conin$", "conout$"} | {f"com{i}" for i in range(10)}
             | {f"lpt{i}" for i in range(10)})
_COMMIT = re.compile(r"[0-9a-f]{40}")
_ETAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+)*")
MAX_NAME = 1024


def path_problem(name, *, max_length: int = MAX_NAME) -> str | None:
    """Why `name` ('/'-separated, relative) cannot safely become a path under a folder; None if it can."""
    if not isinstance(name, str) or not name:
        return "it is empty"
    if len(name) > max_length:
        return f"it is longer than {max_length} characters"
    if name.startswith("/"):
        return "it is an absolute path"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return f"it has a '{part}' part" if part else "it has an empty part ('//')"
        bad = sorted(set(part) & _WINDOWS_FORBIDDEN)
        if bad:
            what = {"\\": "a backslash", ":": "a ':' (a drive letter or stream)"}.get(bad[0], f"the character {bad[0]!r}")
            return f"it contains {what}"
        if part[-1] in ". ":
            return f"'{part}' ends with a dot or a space"
        if part.split(".", 1)[0].rstrip(" ").lower() in _RESERVED:
            return f"'{part}' is a reserved device name on Windows"
    return None


def repo_file(repo_id: str | None, name) -> str:
    """`name` if it may become a path in the cache; HubError naming it otherwise."""
    why = path_problem(name)
    if why:
        raise HubError(repo_id, f"the repository lists a file named {name!r}, which LoRA Deck will not save: {why}")
    return name


def revision(repo_id: str | None, rev) -> str:
    """A branch, tag or commit that may name `refs/<revision>` in the cache (git's ref rules, plus ours)."""
    if isinstance(rev, str) and _COMMIT.fullmatch(rev):
        return rev
    why = path_problem(rev, max_length=255)
    if why is None and (".." in rev or "@{" in rev or any(c in rev for c in "~^[") or rev.endswith(".lock")):
        why = "git does not allow '..', '@{', '~', '^', '[' or a '.lock' ending in a revision"
    if why:
        raise HubError(repo_id, f"{rev!r} is not a usable revision: {why}")
    return rev


def commit(repo_id: str | None, sha) -> str:
    if not isinstance(sha, str) or not _COMMIT.fullmatch(sha):
        raise HubError(repo_id, f"the Hub sent {str(sha)[:80]!r} as a commit id (expected 40 hexadecimal digits); "
                                "is HF_ENDPOINT a Hugging Face Hub?")
    return sha


def etag(repo_id: str | None, filename: str, value) -> str:
    if not isinstance(value, str) or len(value) > 128 or not _ETAG.fullmatch(value):
        raise HubError(repo_id, f"{filename}: the Hub sent no usable ETag ({str(value)[:80]!r}); cannot download it "
                                "safely")
    return value


def repo_id(value) -> str:
    """A repository id as huggingface_hub accepts it ('owner/name': letters, digits, '-', '_', '.')."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    try:
        validate_repo_id(value)
    except HFValidationError as exc:
        raise HubError(None, f"{str(value)[:100]!r} is not a valid repository id ({exc})") from None
    return value
