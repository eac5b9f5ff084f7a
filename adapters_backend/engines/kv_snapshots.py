"""A memory-bounded LRU store of KV-cache snapshots, keyed by the adapter mix that computed them.

A snapshot is the attention cache of one token sequence under one mix: the same tokens under another
mix (another adapter, strength, per-layer factor) have other keys and values, so a snapshot is only
ever used where its mix is the wanted one. The mix may change along a sequence (an activated LoRA acts
only from its invocation tokens on), so a sequence's mix is a list of segments, (first position, mix
key); a plain mix is one segment from 0. A snapshot serves a prompt up to the first position where the
tokens or the mixes differ, and the entry serving the longest prefix wins; only the tokens after it
need evaluating.

The store is engine-neutral: the payload is whatever the engine saves (llama.cpp's sequence-state
bytes, a PyTorch cache) and `nbytes` its size. The budget is never exceeded: `reserve()` evicts the
least recently used entries before the engine allocates a new payload, and a payload larger than the
whole budget is not kept. Only the engine's thread changes the store; `stats()` may be read from any
thread.

Byte buffers (llama.cpp's payloads) are recycled: `buffer()` hands out the buffer of an entry that was
superseded or evicted when it is large enough, and new buffers get headroom so that a conversation
growing by a few turns still fits. Fresh memory is not free: mapped page by page on first write it
cost 1.0-1.2 s per 100 MB on this project's CI machine (a VM; a few ms on bare metal), more than
reading a hundred tokens, so on Linux new buffers are mapped with MAP_POPULATE (33 ms per 100 MB
there). Spare buffers count against the budget like entries.
"""
from __future__ import annotations

import hashlib
import logging
import math
import mmap
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..file_identity import source_identity

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30
AUTO_MAX = 1 * GiB                     # automatic budget: at most this much…
AUTO_MIN = 64 * MiB                    # …and at least this much
AUTO_CONTEXTS = 4                      # …sized to hold this many full contexts of the model,
SPARE_SHARE = 2                        # …within half of the memory the loaded model leaves
HEADROOM = 0.25                        # a new buffer is this much larger than asked (the next turns fit)


def auto_budget(bytes_per_token: int, n_ctx: int, spare: int | None = None) -> int:
    """The default budget for a model: room for a few full contexts, within [64 MiB, 1 GiB], and within
    1/SPARE_SHARE of `spare`, the memory the model leaves where the snapshots live (machine.spare_memory;
    None: unknown). Snapshots that push the computer into swapping (or a GPU out of memory) would cost far
    more than the re-reads they spare: a model that leaves no room gets none."""
    size = int(min(AUTO_MAX, max(AUTO_MIN, AUTO_CONTEXTS * max(1, n_ctx) * max(1, bytes_per_token))))
    if spare is not None:
        size = min(size, max(0, spare // SPARE_SHARE))
    return size


BASE_KEY = "base"                      # the model without adapters


def _adapter_identity(path: str | Path) -> str:
    try:
        return source_identity(path)
    except OSError:
        return str(Path(path).expanduser())   # gone: the engine's load says so; the key stays distinct


def mix_key(adapters) -> str:
    """The KV key of a mix (a sequence of ActiveAdapter): each adapter's source identity, per-layer
    factors and strength; adapters at strength 0 are not part of it. Equal keys mean equal weights in
    every layer. The order is not part of it (llama.cpp keeps a context's adapters in a map keyed by
    adapter, so the order of the list does not change the sum), nor is the form the engine runs the
    mix in (fused or separate)."""
    parts = sorted((_adapter_identity(a.path), tuple(a.layer_scales or ()), float(a.strength))
                   for a in adapters if a.strength)
    if not parts:
        return BASE_KEY
    return "mix:" + hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


Segments = tuple[tuple[int, str], ...]    # (first position, mix key), ascending, the first at 0


def one_mix(key: str) -> Segments:
    return ((0, key),)


def agreement(a: Segments, b: Segments) -> float:
    """The first position where two segment lists name different mixes (infinity: nowhere)."""
    if a == b:
        return math.inf
    starts = sorted({s for s, _k in a} | {s for s, _k in b})
    for pos in starts:
        if _key_at(a, pos) != _key_at(b, pos):
            return pos
    return math.inf


def _key_at(segments: Segments, pos: int) -> str | None:
    key = None
    for start, k in segments:
        if start > pos:
            break
        key = k
    return key


def resized(store, budget: int):
    """The store for a new budget: None for 0 (snapshots off), else `store` with the budget (a new one
    if there was none). Entries beyond a smaller budget are evicted at once."""
    if budget <= 0:
        if store is not None:
            store.clear()
        return None
    if store is None:
        return SnapshotStore(budget)
    store.set_budget(budget)
    return store


def as_tokens(tokens: Sequence[int] | np.ndarray) -> np.ndarray:
    return np.asarray(tokens, dtype=np.int32).reshape(-1)


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    """Length of the longest common prefix of two token arrays."""
    n = min(len(a), len(b))
    if n == 0:
        return 0
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


@dataclass(eq=False)
class Snapshot:
    segments: Segments                 # the mixes that computed it
    tokens: np.ndarray                 # int32, the sequence it covers (positions 0 … len-1)
    payload: object                    # the engine's saved state
    nbytes: int
    buffer: np.ndarray | None = None   # the byte buffer the payload lies in (recycled when it goes)

    def usable(self, segments: Segments, tokens: np.ndarray) -> int:
        """How many leading tokens of a prompt (`tokens` under `segments`) this snapshot serves."""
        return int(min(common_prefix(self.tokens, tokens), agreement(self.segments, segments)))


@dataclass(frozen=True)
class StoreStats:
    entries: int
    nbytes: int
    budget: int
    tokens: int                        # tokens covered, summed over entries
    hits: int                          # lookups that found a usable prefix
    misses: int
    evicted: int
    skipped: int                       # snapshots not stored (budget, allocation failure)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class SnapshotStore:
    def __init__(self, budget: int):
        self._budget = max(0, int(budget))
        self._entries: OrderedDict[int, Snapshot] = OrderedDict()     # id -> snapshot, oldest use first
        self._nbytes = 0                                                # entries and spare buffers
        self._spare: list[np.ndarray] = []                              # buffers of dropped entries
        self._lock = threading.Lock()
        self._counts = {"hits": 0, "misses": 0, "evicted": 0, "skipped": 0}

    # ------------------------------------------------------------------ budget
    @property
    def budget(self) -> int:
        return self._budget

    def set_budget(self, budget: int) -> None:
        """Change the budget; entries beyond it are evicted at once (least recently used first)."""
        with self._lock:
            self._budget = max(0, int(budget))
            self._evict_until(self._budget)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def __len__(self) -> int:
        return len(self._entries)

    def reserve(self, nbytes: int) -> bool:
        """Make room for a payload of `nbytes` (evicting LRU entries); False if it can never fit."""
        with self._lock:
            if nbytes > self._budget:
                return False
            self._evict_until(self._budget - nbytes)
            return True

    def admit(self, nbytes: int, n_tokens: int) -> bool:
        """Whether a payload of `nbytes` can be kept at all; one that can never fit is logged and counted
        as "skipped". (Room is made by reserve() or buffer().)"""
        if nbytes <= self._budget:
            return True
        log.info("KV snapshot of %d tokens (%.0f MiB) not kept: larger than the snapshot budget (%.0f MiB)",
                 n_tokens, nbytes / MiB, self.budget / MiB)
        self.record("skipped")
        return False

    def buffer(self, nbytes: int) -> np.ndarray | None:
        """A byte buffer of at least `nbytes` for a new payload, with room made for it: a recycled one
        when a spare or the least recently used entry's buffer is large enough, else a new one with
        headroom. None when it cannot fit the budget or memory. Pass the buffer's own `nbytes` to put()."""
        with self._lock:
            if nbytes > self._budget:
                return None
            fitting = [b for b in self._spare if b.nbytes >= nbytes]
            if fitting:
                buf = min(fitting, key=lambda b: b.nbytes)
                self._spare = [b for b in self._spare if b is not buf]
                self._nbytes -= buf.nbytes
                return buf
            cap = min(self._budget, max(nbytes, int(nbytes * (1 + HEADROOM))))
            while self._nbytes + cap > self._budget:
                if self._spare:                                  # none of them is large enough
                    self._nbytes -= self._spare.pop().nbytes
                    continue
                if not self._entries:
                    break
                snap = self._pop_oldest()
                if snap.buffer is not None and snap.buffer.nbytes >= nbytes:
                    return snap.buffer
        try:
            return _new_buffer(cap)
        except (MemoryError, OSError):
            return None

    def _pop_oldest(self) -> Snapshot:
        _id, snap = self._entries.popitem(last=False)
        self._nbytes -= snap.nbytes
        self._counts["evicted"] += 1
        log.debug("KV snapshot evicted (%d tokens, %.1f MiB)", len(snap.tokens), snap.nbytes / MiB)
        return snap

    def _evict_until(self, limit: int) -> None:
        while self._nbytes > limit and self._spare:
            self._nbytes -= self._spare.pop().nbytes
        while self._nbytes > limit and self._entries:
            self._pop_oldest()

    def _recycle(self, snap: Snapshot) -> None:
        """An entry leaves the store: its buffer (if it has one of its own size) becomes a spare."""
        if snap.buffer is not None and snap.buffer.nbytes == snap.nbytes:
            self._spare.append(snap.buffer)
            self._nbytes += snap.nbytes

    # ------------------------------------------------------------------ entries
    def best(self, segments: Segments, tokens: Sequence[int] | np.ndarray) -> tuple[Snapshot | None, int]:
        """The entry serving the longest prefix of `tokens` under `segments`, and that length (0: none)."""
        toks = as_tokens(tokens)
        found, length = None, 0
        with self._lock:
            for snap in self._entries.values():
                n = snap.usable(segments, toks)
                if n > length:
                    found, length = snap, n
            if found is not None:
                self._entries.move_to_end(id(found))
        return found, length

    def covers(self, segments: Segments, tokens: Sequence[int] | np.ndarray) -> bool:
        """Whether an entry already holds all of `tokens` under `segments`."""
        toks = as_tokens(tokens)
        with self._lock:
            for snap in self._entries.values():
                if snap.usable(segments, toks) >= len(toks):
                    self._entries.move_to_end(id(snap))
                    return True
        return False

    def put(self, segments: Segments, tokens: Sequence[int] | np.ndarray, payload, nbytes: int,
            buffer: np.ndarray | None = None) -> Snapshot | None:
        """Keep a snapshot (call `reserve(nbytes)` before allocating the payload, or take its `buffer`
        from buffer(): then `nbytes` is the buffer's size). Entries that it extends are dropped: it
        serves every prompt they served. None if it does not fit."""
        toks = as_tokens(tokens).copy()
        toks.flags.writeable = False
        snap = Snapshot(tuple(segments), toks, payload, int(nbytes), buffer)
        with self._lock:
            if snap.nbytes > self._budget:
                self._counts["skipped"] += 1
                return None
            for sid, old in list(self._entries.items()):
                if old.usable(snap.segments, toks) >= len(old.tokens):
                    del self._entries[sid]
                    self._nbytes -= old.nbytes
                    self._recycle(old)
            self._evict_until(self._budget - snap.nbytes)
            self._entries[id(snap)] = snap
            self._nbytes += snap.nbytes
        return snap

    def discard(self, snap: Snapshot) -> None:
        """Forget one entry (it failed to restore, or it is stale)."""
        with self._lock:
            if self._entries.pop(id(snap), None) is not None:
                self._nbytes -= snap.nbytes

    def record(self, event: str) -> None:
        """Count a "hits" (a prompt restored from a snapshot), "misses" or "skipped" event."""
        with self._lock:
            self._counts[event] += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._spare.clear()
            self._nbytes = 0

    def keys(self) -> list[str]:
        """The mix key of each entry's last segment, oldest use first."""
        with self._lock:
            return [s.segments[-1][1] for s in self._entries.values()]

    def stats(self) -> StoreStats:
        with self._lock:
            return StoreStats(len(self._entries), self._nbytes, self._budget,
                              sum(len(s.tokens) for s in self._entries.values()), **self._counts)


def _new_buffer(nbytes: int) -> np.ndarray:
    """A writable byte buffer whose pages are mapped at once where the OS can (Linux: MAP_POPULATE)."""
    populate = getattr(mmap, "MAP_POPULATE", 0)
    if not populate:
        return np.empty(nbytes, dtype=np.uint8)
    area = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
    return np.frombuffer(area, dtype=np.uint8)        # the array keeps the mapping alive


__all__ = ["AUTO_MAX", "AUTO_MIN", "BASE_KEY", "SPARE_SHARE",
           "GiB", "MiB", "Segments", "Snapshot", "SnapshotStore", "StoreStats",
           "agreement", "as_tokens", "auto_budget", "common_prefix", "mix_key", "one_mix", "resized"]
