"""Where the Hub is, where its cache is, whether we are offline, and what its errors mean for the user.

huggingface_hub reads HF_ENDPOINT / HF_HUB_CACHE / HF_HUB_OFFLINE into constants when it is first
imported; we read them again at every call (falling back to those constants) and pass them explicitly,
so a setting changed after start-up (the desktop app's settings, a test's server) applies at once.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..errors import HubAccessError, HubError, HubNotFoundError, HubOfflineError

_TRUE = {"1", "on", "yes", "true"}


def endpoint() -> str:
    from huggingface_hub import constants
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def cache_dir() -> Path:
    """The standard HF cache (shared with every other HF tool)."""
    from huggingface_hub import constants
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path(constants.HF_HUB_CACHE)


def offline() -> bool:
    from huggingface_hub import constants
    env = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return (env or "").strip().lower() in _TRUE if env is not None else bool(constants.HF_HUB_OFFLINE)


def api():
    from huggingface_hub import HfApi
    return HfApi(endpoint=endpoint())


def repo_url(repo_id: str) -> str:
    return f"{endpoint()}/{repo_id}"


OFFLINE_HINT = "Can't reach the Hugging Face Hub — you are offline or it is blocked. Downloaded adapters still work."
OFFLINE_SETTING_HINT = ("The Hugging Face Hub is switched off here (HF_HUB_OFFLINE is set). "
                        "Downloaded adapters still work.")


def offline_hint() -> str:
    """What to tell the user when the Hub is not used: switched off, or out of reach."""
    return OFFLINE_SETTING_HINT if offline() else OFFLINE_HINT


def _causes(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def connection_failure(exc: BaseException) -> str | None:
    """"unreachable" when `exc` (or what caused it) says the Hub could not be reached at all (no
    connection, name resolution, proxy, offline mode); "interrupted" when a connection was made and
    then broke (reset, hung up mid-answer, read timeout); None for anything else."""
    import httpx2
    from huggingface_hub.errors import OfflineModeIsEnabled
    for e in _causes(exc):
        if isinstance(e, (OfflineModeIsEnabled, httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.ProxyError,
                          httpx2.PoolTimeout, ConnectionRefusedError)):
            return "unreachable"
        if isinstance(e, (httpx2.TransportError, ConnectionError, TimeoutError)):
            return "interrupted"
    return None


def is_connection_error(exc: BaseException) -> bool:
    return connection_failure(exc) is not None


def _connection_error(repo_id: str | None, exc: BaseException, what: str, unreachable_hint: str) -> HubError:
    if connection_failure(exc) == "unreachable":
        if not offline():
            from .reach import mark_unreachable
            mark_unreachable()             # the rest of this command (or until a retry in the app) fails at once
        return HubOfflineError(repo_id, unreachable_hint)
    return HubError(repo_id, f"the connection to the Hub broke off{' while reading ' + what if what else ''} "
                             f"and did not recover after retries ({type(exc).__name__}); try again")


@contextlib.contextmanager
def hub_errors(repo_id: str | None, what: str = ""):
    """Turn huggingface_hub's exceptions into HubError subclasses with a message saying what to do."""
    from huggingface_hub import errors as e
    try:
        yield
    except HubError:
        raise
    except e.GatedRepoError:
        raise HubAccessError(repo_id, f"this repository is gated: open {repo_url(repo_id)} and accept its "
                                      "terms, then set your token (`loradeck hub login`, or Settings in the "
                                      "app)") from None
    except e.RevisionNotFoundError:
        raise HubNotFoundError(repo_id, f"no such revision{(' for ' + what) if what else ''}") from None
    except e.RepositoryNotFoundError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        hint = ("your token was rejected or lacks access" if status in (401, 403) else
                "check the name; if it is private, set a token with access (`loradeck hub login`)")
        raise HubNotFoundError(repo_id, f"repository not found or not accessible: {hint}") from None
    except e.EntryNotFoundError as exc:
        if isinstance(exc, e.LocalEntryNotFoundError):
            missing = f"{offline_hint()} ({what or 'this file'} was never downloaded)"
            if exc.__cause__ is not None and connection_failure(exc.__cause__):
                raise _connection_error(repo_id, exc.__cause__, what, missing) from None
            raise HubOfflineError(repo_id, missing) from None
        raise HubNotFoundError(repo_id, f"{what or 'file'} does not exist in this repository") from None
    except e.HFValidationError as exc:
        raise HubError(repo_id, f"not a valid repository id ({exc})") from None
    except e.HfHubHTTPError as exc:
        if is_connection_error(exc):
            raise _connection_error(repo_id, exc, what, offline_hint()) from None
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise HubError(repo_id, f"the Hub answered HTTP {status}{' for ' + what if what else ''}; "
                                "try again later") from None
    except Exception as exc:
        if is_connection_error(exc):
            raise _connection_error(repo_id, exc, what, offline_hint()) from None
        raise
