"""Build fused adapter files in the background.

A settled mix of several adapters runs fastest as ONE adapter (factors stacked along the rank,
strengths folded into B; see fold.write_folded). Writing that file takes a moment, so a worker
thread does it while the user reads the reply; the engine swaps it in at the start of a later
generation, on its own thread. Only the newest request matters: a build for a mix the user has
already left is abandoned at the next tensor. The worker never competes with a generation for the
CPU: it waits while the engine is busy and until the engine has been idle for `settle` seconds
(back-to-back generations with changing mixes, as in a strength sweep, start no build at all).
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

from ..errors import JobCancelled
from ..paths import cache_dir
from .fold import FoldPart, write_folded

log = logging.getLogger(__name__)

KEEP_FILES = 4                         # fused files kept for quick return to a recent mix
SETTLE_SECONDS = 0.5                   # idle time before a build starts (or goes on)
STALE_DIR_SECONDS = 24 * 3600


def mix_signature(parts: Sequence[tuple[str, float]]) -> str:
    """Identity of a mix: (file identity, strength) per adapter, in order."""
    return hashlib.sha256(repr(tuple(parts)).encode()).hexdigest()[:32]


class FusedBuilder:
    def __init__(self, folder: Path | None = None, keep_f32=None, settle: float = SETTLE_SECONDS):
        root = cache_dir() / "engine-tmp"
        root.mkdir(parents=True, exist_ok=True)
        _remove_stale(root)
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="fused-", dir=root))
        self._lock = threading.Condition()
        self._wanted: tuple[str, list[FoldPart]] | None = None
        self._building: str | None = None
        self._done: OrderedDict[str, Path] = OrderedDict()
        self._failed: dict[str, str] = {}
        self._closed = False
        self._thread: threading.Thread | None = None
        self.build_seconds: dict[str, float] = {}
        self._keep_f32 = keep_f32          # base tensor name -> keep its fused LoRA in F32?
        self._settle = settle
        self._busy = False                 # the engine is generating
        self._idle_since = time.monotonic()
        self._urgent: str | None = None    # a signature someone is waiting for: build it at once

    def set_busy(self, busy: bool) -> None:
        """The engine starts (True) or ends (False) a generation."""
        with self._lock:
            self._busy = busy
            if not busy:
                self._idle_since = time.monotonic()
            self._lock.notify_all()

    def request(self, sig: str, parts: Sequence[FoldPart], urgent: bool = False) -> None:
        with self._lock:
            if urgent:
                self._urgent = sig
            if self._closed or sig in self._done or sig in self._failed or self._building == sig:
                return
            self._wanted = (sig, list(parts))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="loradeck-fuse", daemon=True)
                self._thread.start()
            self._lock.notify_all()

    def result(self, sig: str) -> Path | None:
        with self._lock:
            path = self._done.get(sig)
            if path is not None and path.exists():
                self._done.move_to_end(sig)
                return path
            return None

    def failed(self, sig: str) -> str | None:
        with self._lock:
            return self._failed.get(sig)

    def wait(self, sig: str, timeout: float | None = None) -> Path | None:
        """Block until `sig` is built (or failed, or timeout); returns its file or None. Waiting makes
        the build urgent (no settle delay)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._urgent = sig
            self._lock.notify_all()
            while not self._closed and sig not in self._done and sig not in self._failed:
                if self._building != sig and (self._wanted is None or self._wanted[0] != sig):
                    return None            # nobody is building it
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                self._lock.wait(left)
        return self.result(sig)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._wanted = None
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed or self._wanted is None:
                    self._thread = None
                    return
                sig, parts = self._wanted
                self._wanted = None
                self._building = sig
            out = self.folder / f"fused-{sig[:16]}.gguf"
            t0 = time.perf_counter()
            try:
                self._wait_until_idle(sig)
                self.folder.mkdir(parents=True, exist_ok=True)   # another process may have pruned it
                write_folded(out, parts, name="LoRA Deck fused mix", cancelled=lambda s=sig: self._gate(s),
                             keep_f32=self._keep_f32)
            except JobCancelled:
                log.debug("fused build %s abandoned (the mix changed)", sig[:8])
                with self._lock:
                    self._building = None
                    self._lock.notify_all()
                continue
            except Exception as exc:  # a failed fusion only costs speed; the engine keeps going
                log.warning("could not fuse the adapter mix (%s); it runs as separate adapters", exc)
                with self._lock:
                    self._failed[sig] = str(exc)
                    self._building = None
                    self._lock.notify_all()
                continue
            with self._lock:
                self.build_seconds[sig] = time.perf_counter() - t0
                self._done[sig] = out
                while len(self._done) > KEEP_FILES:
                    _old, old_path = self._done.popitem(last=False)
                    old_path.unlink(missing_ok=True)
                self._building = None
                self._lock.notify_all()

    def _superseded(self, sig: str) -> bool:
        return self._closed or (self._wanted is not None and self._wanted[0] != sig)

    def _wait_until_idle(self, sig: str) -> None:
        """Block while the engine generates or has not been idle for `settle` s; JobCancelled when the
        build is no longer wanted."""
        with self._lock:
            while True:
                if self._superseded(sig):
                    raise JobCancelled("superseded")
                if self._urgent == sig and not self._busy:
                    return
                idle = time.monotonic() - self._idle_since
                if not self._busy and idle >= self._settle:
                    return
                self._lock.wait(None if self._busy else max(0.01, self._settle - idle))

    def _gate(self, sig: str) -> bool:
        """Between two tensors: True (stop) if superseded; otherwise wait out any generation."""
        try:
            self._wait_until_idle(sig)
        except JobCancelled:
            return True
        return False


def _remove_stale(root: Path) -> None:
    """Fused-file folders left behind by a process that did not close its engine."""
    now = time.time()
    for d in root.glob("fused-*"):
        try:
            if now - d.stat().st_mtime > STALE_DIR_SECONDS:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass
