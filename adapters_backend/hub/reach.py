"""Can the Hub be reached? One short probe, then an answer at once for the rest of the command.

Where name resolution or the connection hangs, each huggingface_hub call waits for the system's
timeouts (20–30 s for a stuck resolver, for ever for a server that accepts and never answers), and
retries. Instead, the first Hub call sends one HEAD request to the endpoint with a deadline of
PROBE_SECONDS — in a thread, since a hanging DNS lookup cannot be interrupted — and when no answer
comes the Hub counts as unreachable: every later call fails at once with the offline message, until
`retry()` (the app calls it when the user searches again) or the end of the process. Any HTTP answer
at all, even an error status, means the Hub is there. On a very slow link, LORADECK_HUB_PROBE_SECONDS
gives the probe longer.
"""
from __future__ import annotations

import logging
import os
import threading
import time

from ..errors import HubOfflineError
from .client import OFFLINE_HINT, OFFLINE_SETTING_HINT, endpoint, offline

log = logging.getLogger(__name__)

PROBE_SECONDS = 2.5
RECHECK_SECONDS = 60.0     # a Hub found reachable is probed again after this long (the app runs for hours)

_known: dict[str, tuple[bool, float]] = {}      # endpoint -> (reachable, when it was found out)
_lock = threading.Lock()


def require_hub(repo_id: str | None = None) -> None:
    """Raise HubOfflineError at once when the Hub is switched off (HF_HUB_OFFLINE) or out of reach."""
    if offline():
        raise HubOfflineError(repo_id, OFFLINE_SETTING_HINT)
    if not reachable():
        raise HubOfflineError(repo_id, OFFLINE_HINT)


def reachable(url: str | None = None) -> bool:
    url = url or endpoint()
    with _lock:                              # concurrent callers share one probe
        known = _known.get(url)
        if known is not None and (not known[0] or time.monotonic() - known[1] < RECHECK_SECONDS):
            return known[0]
        ok = _probe(url)
        _known[url] = (ok, time.monotonic())
        return ok


def mark_unreachable(url: str | None = None) -> None:
    """A call found the Hub out of reach: later ones fail at once."""
    with _lock:
        _known[url or endpoint()] = (False, time.monotonic())


def retry() -> None:
    """Forget what was found out: the next Hub call probes again."""
    with _lock:
        _known.clear()


def probe_seconds() -> float:
    try:
        return max(0.1, float(os.environ.get("LORADECK_HUB_PROBE_SECONDS") or PROBE_SECONDS))
    except ValueError:
        return PROBE_SECONDS


def _probe(url: str) -> bool:
    answer: list = []
    seconds = probe_seconds()

    def head():
        from huggingface_hub.utils import get_session
        try:
            # The session huggingface_hub itself uses: the same proxies and certificates as the real calls.
            get_session().head(url + "/", timeout=seconds, follow_redirects=False)
            answer.append(None)
        except Exception as exc:  # any failure means "not reachable"; kept for the log
            answer.append(exc)

    t0 = time.monotonic()
    thread = threading.Thread(target=head, name="loradeck-hub-probe", daemon=True)
    thread.start()
    thread.join(seconds + 0.25)
    if answer and answer[0] is None:
        return True
    why = f"{type(answer[0]).__name__}: {answer[0]}" if answer else f"no answer in {time.monotonic() - t0:.1f} s"
    log.info("the Hub at %s cannot be reached (%s)", url, why)
    return False
