"""Files a whole-file check has passed, remembered by identity (resolved path, size, modification time)
in the cache folder and by the process, so the check runs once per file rather than at every start:
a model opened in a child process first (engines/llama_probe), an adapter's values read through
(engines/adapter_files). A file that changes has another identity and is checked again."""
from __future__ import annotations

import logging
from pathlib import Path

from .atomic import read_json, write_json_atomic
from .file_identity import file_identity
from .paths import cache_dir

log = logging.getLogger(__name__)


def identity(files: list[Path]) -> str:
    """The files' identities, one line each (file_identity: resolved path, size, modification time)."""
    return "\n".join(map(file_identity, files))


class PassedChecks:
    def __init__(self, file_name: str, keep: int = 200):
        self.file_name = file_name              # in the cache folder
        self.keep = keep                        # newest kept
        self.here: set[str] = set()             # also this process's, whichever cache folder it uses now

    def _path(self) -> Path:
        return cache_dir() / self.file_name

    def saved(self) -> list[str]:
        entries = read_json(self._path(), [])
        return [e for e in entries if isinstance(e, str)] if isinstance(entries, list) else []

    def __contains__(self, key: str) -> bool:
        return key in self.here or key in self.saved()

    def add(self, key: str) -> None:
        self.here.add(key)
        entries = [key] + [e for e in self.saved() if e != key]
        try:
            write_json_atomic(self._path(), entries[:self.keep])
        except OSError as exc:                  # only costs a check next time
            log.info("could not remember that %s passed its check: %s", key, exc)


__all__ = ["PassedChecks", "identity"]
