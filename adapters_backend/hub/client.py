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


OFFLINE_HINT = ("you are offline (HF_HUB_OFFLINE is set or the Hub cannot be reached); "
                "only repositories already downloaded are available")


def is_connection_error(exc: BaseException) -> bool:
    from huggingface_hub.errors import OfflineModeIsEnabled
    if isinstance(exc, (OfflineModeIsEnabled, ConnectionError, TimeoutError)):
        return True
    try:
        import httpx2 as httpx
    except ImportError:  # huggingface_hub 1.x
        try:
            import httpx
        except ImportError:
            return False
    return isinstance(exc, httpx.TransportError)   # connect, read, timeout, protocol (hung up)


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
            raise HubOfflineError(repo_id, f"{OFFLINE_HINT}, and {what or 'this file'} is not in the cache") from None
        raise HubNotFoundError(repo_id, f"{what or 'file'} does not exist in this repository") from None
    except e.HFValidationError as exc:
        raise HubError(repo_id, f"not a valid repository id ({exc})") from None
    except e.HfHubHTTPError as exc:
        if is_connection_error(exc):
            raise HubOfflineError(repo_id, OFFLINE_HINT) from None
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise HubError(repo_id, f"the Hub answered HTTP {status}{' for ' + what if what else ''}; "
                                "try again later") from None
    except Exception as exc:
        if is_connection_error(exc):
            raise HubOfflineError(repo_id, OFFLINE_HINT) from None
        raise
