"""Errors the backend raises. Every message is meant for the user: it names the file and the problem.

Each class has two parents so callers can catch either the LoRA Deck family or the builtin kind.
"""
from __future__ import annotations

from pathlib import Path


class BackendError(Exception):
    """Base of every error LoRA Deck reports to the user (the CLI prints it without a traceback)."""


class AdapterFormatError(BackendError, ValueError):
    """An adapter file or folder cannot be read: corrupt, truncated, wrong layout, unsupported variant."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class UnsafeFileError(AdapterFormatError):
    """A file that could run code when loaded (a pickle that is not plain tensors) was refused."""


class BaseModelError(BackendError, ValueError):
    """A base model (GGUF file or HF folder) cannot be read."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class IncompatibleAdapterError(BackendError, ValueError):
    """The adapter does not fit the base model; `report` holds the full compatibility report."""

    def __init__(self, message: str, report=None):
        self.report = report
        super().__init__(message)


class UsageError(BackendError, ValueError):
    """An argument the user gave cannot be understood (the message says which and why)."""


class PluginError(BackendError, RuntimeError):
    """A plugin is broken: bad manifest, duplicate id, import failure."""


class PluginLoadError(PluginError, ImportError):
    """A plugin's "module:attr" reference could not be imported or resolved."""


class EngineUnavailable(BackendError, RuntimeError):
    """An engine's optional dependency is missing (the message says how to install it)."""


class EngineError(BackendError, RuntimeError):
    """An inference engine failed at run time (model load, adapter apply, decode); the message says why."""


class JobCancelled(BackendError):
    """A long job stopped because the user cancelled it."""


class LibraryError(BackendError, RuntimeError):
    """The adapter library cannot do what was asked (unknown id, locked, unreadable index)."""


class HubError(BackendError, RuntimeError):
    """A Hugging Face Hub request failed; the message names the repository and says what to do."""

    def __init__(self, repo_id: str | None, problem: str):
        self.repo_id = repo_id
        self.problem = problem
        super().__init__(f"{repo_id}: {problem}" if repo_id else problem)


class HubAccessError(HubError):
    """A gated or private repository, or a rejected token."""


class HubNotFoundError(HubError):
    """No such repository, revision or file on the Hub."""


class HubOfflineError(HubError):
    """Offline (HF_HUB_OFFLINE or no connection) and the thing asked for is not in the local cache."""
