"""The llama.cpp engine's KV cache across adapter mixes.

llama-cpp-python keeps one sequence (id 0) in the context and reuses the longest token prefix it
shares with the next prompt. That is only right while the adapters are those that computed it, so
`LlamaKV` remembers which mix computed each part of the live cache (kv_snapshots.Segments: one mix
key, or several along the sequence when an activated LoRA starts part-way) and:

- reuses the live cache only as far as its mixes are the wanted ones;
- before the live cache is dropped (another mix, or a prompt that would throw most of it away), saves
  it into the `SnapshotStore` with llama.cpp's sequence-state API (`llama_state_seq_get_data`: only
  the cells of sequence 0, i.e. exactly the tokens it holds; no logits, no other state);
- restores the stored snapshot of the wanted mix sharing the longest prefix with the prompt, when it
  beats the live cache, and evaluates only the tokens after it;
- evaluates in chunks that stop when asked (pre-warm), keeping every finished chunk.

A snapshot that llama.cpp refuses, or whose restored positions do not match its tokens, is discarded
and the prompt is evaluated from scratch: a restored cache is never wrong, at worst absent.

Measured on a 748M-parameter f16 Llama, 2,000 tokens, 2 threads: a sequence snapshot is 197 MB;
`llama_state_seq_get_data` takes 31 ms into a reused buffer (55 ms into a new one),
`llama_state_seq_set_data` 30 ms. llama-cpp-python's `save_state` (whole context, plus a copy of the
logits) takes 0.9-1.6 s for the same cache and `load_state` longer, so the sequence API is used.
"""
from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Sequence

import numpy as np

from .kv_snapshots import MiB, Segments, Snapshot, SnapshotStore, agreement, as_tokens, common_prefix

log = logging.getLogger(__name__)

SEQ = 0                                # llama-cpp-python evaluates everything as sequence 0
STASH_MIN_TOKENS = 16                  # shorter live caches are not worth keeping
RESTORE_MIN_GAIN = 8                   # a snapshot must spare at least this many tokens over the live cache

_U8P = ctypes.POINTER(ctypes.c_uint8)


def context_tokens(llm) -> int:
    """How many tokens the context holds. llama.cpp rounds the context it is asked for up to a multiple
    of 256, but llama-cpp-python sizes its token arrays (input_ids, scores) to the number asked for:
    a prompt or an answer past that fails inside its eval with a numpy error. The smaller of the two."""
    return min(int(llm.n_ctx()), len(llm.input_ids))


def kv_bytes_per_token(llm, architecture: str, f32: bool) -> int:
    """KV-cache bytes one token takes in a context of this model (K and V of every layer)."""
    import llama_cpp as lib

    model = llm.model
    n_embd, n_head = lib.llama_model_n_embd(model), max(1, lib.llama_model_n_head(model))
    head_k = int(llm.metadata.get(f"{architecture}.attention.key_length", n_embd // n_head))
    head_v = int(llm.metadata.get(f"{architecture}.attention.value_length", head_k))
    return int(lib.llama_model_n_layer(model) * lib.llama_model_n_head_kv(model) * (head_k + head_v) * (4 if f32 else 2))


class LlamaKV:
    def __init__(self, llm, store: SnapshotStore | None):
        import llama_cpp

        self._lib = llama_cpp
        self._llm = llm
        self.store = store
        self.segments: Segments | None = None   # the mixes that computed the live cache (None: empty)
        self.last_restored = 0         # tokens the last prepare() took from a snapshot

    # ------------------------------------------------------------------ the live cache
    @property
    def n_live(self) -> int:
        return int(self._llm.n_tokens)

    def live_tokens(self) -> np.ndarray:
        return np.array(self._llm.input_ids[: self._llm.n_tokens], dtype=np.int32)

    def logits_ready(self, n_tokens: int) -> bool:
        """Whether the context's current logits are those after exactly `n_tokens` live tokens."""
        return self.n_live == n_tokens and not self._llm._requires_eval

    def invalidate(self) -> None:
        """Forget the live cache (it is cleared before the next evaluation)."""
        self._llm.reset()
        self._llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        self.segments = None

    def _trim(self, n: int) -> None:
        llm = self._llm
        if n < llm.n_tokens or n == 0:
            llm._ctx.kv_cache_seq_rm(-1, n, -1)
            llm.n_tokens = n
            llm._requires_eval = True

    # ------------------------------------------------------------------ reuse
    def usable_live(self, segments: Segments, toks: np.ndarray) -> int:
        """How many leading tokens of a prompt the live cache serves."""
        if self.segments is None:
            return 0
        return int(min(common_prefix(self.live_tokens(), toks), agreement(self.segments, segments)))

    def reusable(self, segments: Segments, tokens: Sequence[int]) -> int:
        """How many leading tokens of a prompt the live cache or a snapshot could serve (no change)."""
        toks = as_tokens(tokens)
        stored = self.store.best(tuple(segments), toks)[1] if self.store is not None else 0
        return max(self.usable_live(tuple(segments), toks), stored)

    def prepare(self, segments: Segments, tokens: Sequence[int]) -> int:
        """Make the live cache hold the longest reusable prefix of `tokens` under `segments` (restoring
        a snapshot, saving the live cache first when it would be lost) and drop anything after it.
        Returns the prefix length; the caller evaluates `tokens[length:]` under `segments`. When the
        whole prompt is cached but its last logits are not at hand, the last token is left to evaluate."""
        toks = as_tokens(tokens)
        segments = tuple(segments)
        self.last_restored = 0
        live = self.usable_live(segments, toks)
        snap, stored = (None, 0) if self.store is None else self.store.best(segments, toks)
        if snap is not None and stored >= live + RESTORE_MIN_GAIN:
            self.stash()
            if self._restore(snap):
                self.store.record("hits")
                live = self.last_restored = stored
            else:
                self.store.discard(snap)
                live = 0
        else:
            if self.store is not None and snap is None and live == 0:
                self.store.record("misses")
            mixes_differ = self.segments is not None and agreement(self.segments, segments) < self.n_live
            if mixes_differ or self._loses_most(live):
                self.stash()
            if live == 0:
                self.invalidate()
        self.segments = segments
        if live == len(toks) and not self.logits_ready(live):
            live -= 1
        self._trim(live)
        return live

    def _loses_most(self, keep: int) -> bool:
        """Keeping only `keep` tokens would throw away at least half of the live cache."""
        n = self.n_live
        return n >= STASH_MIN_TOKENS and n - keep >= n / 2

    def extend(self, tokens: Sequence[int], chunk: int, stop: Callable[[], bool],
               report: Callable[[int, int], None] | None = None, total: int | None = None) -> bool:
        """Evaluate `tokens[n_live:]` in chunks of at most `chunk` tokens (reporting progress against
        `total`, default len(tokens)). Returns True when all are evaluated, False when `stop()` said so
        (the finished chunks stay in the cache). An error or an abort inside a chunk drops that chunk's
        partial cells and re-raises (abort: returns False)."""
        toks = [int(t) for t in tokens]
        end = len(toks)
        total = end if total is None else total
        llm = self._llm
        while llm.n_tokens < end:
            if stop():
                return False
            start = llm.n_tokens
            try:
                llm.eval(toks[start:start + chunk])
            except RuntimeError:
                llm._ctx.kv_cache_seq_rm(-1, llm.n_tokens, -1)  # cells of the broken chunk
                llm._requires_eval = True
                if stop():
                    return False
                raise
            if report is not None:
                report(llm.n_tokens, total)
        return True

    # ------------------------------------------------------------------ snapshots
    def stash(self) -> bool:
        """Keep the live cache in the store under its mix key (unless the store holds it already).
        Failing to keep it (budget, memory) is logged, never raised."""
        n = self.n_live
        if self.store is None or self.segments is None or n < STASH_MIN_TOKENS:
            return False
        toks = self.live_tokens()
        if self.store.covers(self.segments, toks):
            return True
        lib, ctx = self._lib, self._llm.ctx
        self._llm._ctx.kv_cache_seq_rm(-1, n, -1)  # exactly the live tokens
        size = int(lib.llama_state_seq_get_size(ctx, SEQ))
        if not self.store.admit(size, n):
            return False
        buf = self.store.buffer(size)              # a recycled one when it can: fresh pages cost time
        if buf is None:
            log.info("KV snapshot of %d tokens (%.0f MiB) not kept: out of memory", n, size / MiB)
            self.store.record("skipped")
            return False
        written = int(lib.llama_state_seq_get_data(ctx, buf.ctypes.data_as(_U8P), size, SEQ))
        if written <= 0 or written > size:
            log.info("KV snapshot of %d tokens not kept: llama.cpp wrote %d of %d bytes", n, written, size)
            self.store.record("skipped")
            return False
        return self.store.put(self.segments, toks, buf[:written], buf.nbytes, buffer=buf) is not None

    def _restore(self, snap: Snapshot) -> bool:
        """Load a snapshot into sequence 0; False (and an empty cache) if llama.cpp refuses it or the
        restored positions do not match its tokens."""
        lib, llm = self._lib, self._llm
        buf: np.ndarray = snap.payload
        n = len(snap.tokens)
        ok = n <= context_tokens(llm)
        if ok:
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            read = int(lib.llama_state_seq_set_data(llm.ctx, buf.ctypes.data_as(_U8P), buf.nbytes, SEQ))
            mem = lib.llama_get_memory(llm.ctx)
            ok = (read == buf.nbytes and lib.llama_memory_seq_pos_min(mem, SEQ) == 0
                  and lib.llama_memory_seq_pos_max(mem, SEQ) == n - 1)
        if not ok:
            log.warning("a KV snapshot of %d tokens did not restore (damaged or from another context); "
                        "discarded, the prompt is read again", n)
            self.invalidate()
            return False
        llm.input_ids[:n] = snap.tokens
        llm.n_tokens = n
        llm._requires_eval = True  # no logits came with it
        return True


__all__ = ["LlamaKV", "RESTORE_MIN_GAIN", "STASH_MIN_TOKENS", "kv_bytes_per_token"]
