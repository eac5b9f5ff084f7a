"""The PyTorch engine's KV cache across adapter mixes: the same rules as llama_kv.py, on transformers'
`DynamicCache`.

The live cache is tagged with the mixes that computed it (kv_snapshots.Segments) and reused only as
far as they are the wanted ones; a cache about to be dropped is kept in the `SnapshotStore` (a copy of
its tensors, `nbytes` their size), and the stored cache serving the longest prefix of a prompt comes
back as a copy cropped to that prefix. transformers' dynamic cache layers never write into their
tensors, so those copies share the tensors (`detached_copy`): keeping or restoring a snapshot moves no
memory. At least the prompt's last token is always evaluated (its logits are not cached). A cache
that cannot be cropped (sliding-window layers past their window) is not reused.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import numpy as np

from .kv_snapshots import Segments, SnapshotStore, agreement, as_tokens, common_prefix

log = logging.getLogger(__name__)

STASH_MIN_TOKENS = 16
RESTORE_MIN_GAIN = 8


def cache_nbytes(cache) -> int:
    """Bytes the key/value tensors of a transformers cache keep alive: whole storages, once each (a
    cropped layer is a view that holds its uncropped storage)."""
    total, seen = 0, set()
    for layer in getattr(cache, "layers", ()) or ():
        for name in ("keys", "values"):
            t = getattr(layer, name, None)
            if t is None or not hasattr(t, "element_size"):
                continue
            try:
                storage = t.untyped_storage()
                key, n = storage.data_ptr(), storage.nbytes()
            except (RuntimeError, NotImplementedError):
                key, n = id(t), t.numel() * t.element_size()
            if key not in seen:
                seen.add(key)
                total += n
    return total


def _sharable_layers() -> tuple[type, ...]:
    try:
        from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer
    except ImportError:                      # an older transformers: always deep copies
        return ()
    return DynamicLayer, DynamicSlidingWindowLayer


def detached_copy(cache):
    """A copy of `cache` that later updates of either one do not change.

    A dynamic layer's update concatenates into new tensors and its crop slices, so a copy of the
    layer objects that shares their tensors is enough, and costs nothing (a deep copy of a 2k-token
    cache is ~100 MB of fresh memory). Any other layer type (static, quantized, linear attention:
    written in place), a subclass, or an offloading cache is deep-copied."""
    layers, sharable = getattr(cache, "layers", None), _sharable_layers()
    if (not isinstance(layers, list) or getattr(cache, "offloading", False)
            or not all(type(layer) in sharable for layer in layers)):
        return copy.deepcopy(cache)
    twin = copy.copy(cache)
    twin.layers = [copy.copy(layer) for layer in layers]
    return twin


def crop(cache, n: int) -> bool:
    """Cut a cache to its first `n` positions; False if this cache cannot be cut there."""
    have = int(cache.get_seq_length())
    if n >= have:
        return n == have
    try:
        cache.crop(-(have - n))
    except (RuntimeError, ValueError) as exc:
        log.debug("KV cache not cropped (%s)", exc)
        return False
    return int(cache.get_seq_length()) == n


class TorchKV:
    def __init__(self, store: SnapshotStore | None):
        self.store = store
        self.segments: Segments | None = None
        self.tokens = np.zeros(0, dtype=np.int32)     # what the live cache holds
        self.cache = None
        self.last_restored = 0

    @property
    def n_live(self) -> int:
        return len(self.tokens) if self.cache is not None else 0

    def invalidate(self) -> None:
        self.cache, self.segments = None, None
        self.tokens = np.zeros(0, dtype=np.int32)

    def reusable(self, segments: Segments, tokens: Sequence[int]) -> int:
        """How many leading tokens of a prompt the live cache or a snapshot could serve (no change)."""
        toks, segments = as_tokens(tokens), tuple(segments)
        live = 0
        if self.segments is not None and self.cache is not None:
            live = int(min(common_prefix(self.tokens, toks), agreement(self.segments, segments)))
        stored = self.store.best(segments, toks)[1] if self.store is not None else 0
        return max(live, stored)

    def prepare(self, segments: Segments, tokens: Sequence[int]) -> int:
        """Make the live cache hold the longest reusable prefix of `tokens` under `segments` (at most all
        but the last token); returns its length. The caller evaluates the rest on `self.cache`."""
        toks = as_tokens(tokens)
        segments = tuple(segments)
        limit = max(0, len(toks) - 1)
        self.last_restored = 0
        live = 0
        if self.segments is not None and self.cache is not None:
            live = int(min(common_prefix(self.tokens, toks), agreement(self.segments, segments), limit))
        snap, stored = (None, 0) if self.store is None else self.store.best(segments, toks)
        stored = min(stored, limit)
        if snap is not None and stored >= live + RESTORE_MIN_GAIN:
            self.stash()
            cache = detached_copy(snap.payload)
            if crop(cache, stored):
                self.store.record("hits")
                self.cache, self.tokens = cache, snap.tokens[:stored].copy()
                self.segments = segments
                self.last_restored = stored
                return stored
            self.store.discard(snap)
            self.invalidate()
            live = 0
        if self.store is not None and snap is None and live == 0:
            self.store.record("misses")
        mixes_differ = self.segments is not None and agreement(self.segments, segments) < self.n_live
        if mixes_differ or (self.n_live >= STASH_MIN_TOKENS and self.n_live - live >= self.n_live / 2):
            self.stash()
        if live == 0 or not crop(self.cache, live):
            self.invalidate()
            live = 0
        else:
            self.tokens = self.tokens[:live].copy()
        self.segments = segments
        return live

    def extended(self, cache, tokens: Sequence[int]) -> None:
        """The live cache now holds `tokens` (after a forward pass on `cache`)."""
        self.cache = cache
        self.tokens = as_tokens(tokens).copy()

    def stash(self) -> bool:
        """Keep a copy of the live cache in the store (unless it holds it already); failures are logged."""
        n = self.n_live
        if self.store is None or self.segments is None or n < STASH_MIN_TOKENS:
            return False
        if self.store.covers(self.segments, self.tokens):
            return True
        size = cache_nbytes(self.cache)
        if not self.store.admit(size, n) or not self.store.reserve(size):
            return False
        try:
            payload = detached_copy(self.cache)
        except (MemoryError, RuntimeError) as exc:     # torch raises RuntimeError for out-of-memory
            log.info("KV snapshot of %d tokens not kept: %s", n, exc)
            self.store.record("skipped")
            return False
        return self.store.put(self.segments, self.tokens, payload, size) is not None


__all__ = ["TorchKV", "cache_nbytes", "crop", "detached_copy"]
