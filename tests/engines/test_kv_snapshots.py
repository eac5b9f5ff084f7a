"""Per-mix KV snapshots in the llama.cpp engine: every reused cache gives the logits a fresh evaluation
of the same tokens under the same mix gives (≤ 1e-4 × max|logit|, f32 KV cache), and nothing computed
under one mix is ever used under another.

The reference for each check is a second engine that keeps no snapshots and has seen nothing but the
tokens being compared."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from adapters_backend.engines import llama_prompts
from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams
from adapters_backend.engines.kv_snapshots import SnapshotStore, agreement, auto_budget, common_prefix, one_mix
from adapters_backend.jobs import JobContext

GREEDY = SamplingParams(max_tokens=12, temperature=0.0, repeat_penalty=1.0)


def tokens(n: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [1] + [int(t) for t in rng.integers(300, 30000, n - 1)]


def assert_exact(got: np.ndarray, want: np.ndarray) -> None:
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), np.abs(got - want).max() / np.abs(want).max()


@pytest.fixture
def engines(tiny, make_engine):
    """(engine under test, fresh(mix, tokens) -> reference logits). f32 KV (logits_all) in both."""
    e = make_engine(tiny.base, logits_all=True, kv_snapshot_budget=64 << 20)
    ref = make_engine(tiny.base, logits_all=True, kv_snapshot_budget=0)

    def fresh(mix, toks):
        ref.set_adapters(mix)
        ref._kv.invalidate()
        return ref.next_token_logits(toks)

    return e, fresh


def mix(tiny, s1=0.7, s2=None, layers=None):
    out = [ActiveAdapter(tiny.l1_path, s1)]
    if s2 is not None:
        out.append(ActiveAdapter(tiny.l2_path, s2, layer_scales=layers))
    return out


# ---------------------------------------------------------------------------------------------- store
def test_store_keeps_the_budget_evicts_lru_and_matches_prefixes_per_mix():
    A, B, C, D = (one_mix(k) for k in "ABCD")
    store = SnapshotStore(1000)
    a = store.put(A, [1, 2, 3, 4], "a", 400)
    store.put(B, [1, 2, 3, 4], "b", 400)
    assert store.best(A, [1, 2, 3, 9]) == (a, 3)            # touched: A is now the most recent
    assert store.best(C, [1, 2, 3]) == (None, 0)             # never across mixes
    assert store.reserve(400) and store.nbytes == 400         # B (least recently used) went first
    assert store.keys() == ["A"]
    store.put(C, [5, 6], "c", 400)
    assert not store.reserve(1001) and store.nbytes == 800    # larger than the whole budget: refused
    assert store.put(D, [1], "d", 2000) is None and store.stats().skipped == 1
    # An entry that extends another of the same mix replaces it; one it covers is found by covers().
    longer = store.put(A, [1, 2, 3, 4, 5, 6], "a2", 300)
    assert store.keys().count("A") == 1 and store.best(A, [1, 2, 3, 4, 5])[0] is longer
    assert store.covers(A, [1, 2, 3]) and not store.covers(A, [1, 2, 7])
    store.set_budget(350)
    assert store.nbytes <= 350 and store.stats().budget == 350
    assert common_prefix(np.array([1, 2]), np.array([1, 2, 3])) == 2


def test_byte_buffers_are_recycled_within_the_budget():
    """Fresh memory costs page faults (seconds per GB on a VM): a stash reuses the buffer of the entry
    its mix superseded or of the least recently used one, and spare buffers count against the budget."""
    A, B, C = (one_mix(k) for k in "ABC")
    store = SnapshotStore(1000)

    def stash(segments, toks, size):
        buf = store.buffer(size)
        assert buf is not None and buf.nbytes >= size
        store.put(segments, toks, buf[:size], buf.nbytes, buffer=buf)
        assert store.nbytes <= store.budget
        return buf

    a1 = stash(A, [1, 2], 200)
    assert a1.nbytes == 250                                   # headroom for the next turns
    a2 = stash(A, [1, 2, 3], 210)                             # supersedes a1: a1 becomes a spare
    assert a2 is not a1 and store.nbytes == 250 + 262
    b1 = stash(B, [1, 2, 3, 4], 220)                          # the spare fits: no new memory
    assert b1 is a1 and store.nbytes == 250 + 262
    c1 = stash(C, [7], 400)                                   # full: the oldest entry (a2) is too small,
    assert c1 is not a2 and store.keys() == ["B", "C"]        # so it is dropped and a new buffer comes
    assert store.nbytes == 250 + 500
    d = store.buffer(240)                                     # the oldest entry's buffer (b1) is reused
    assert d is b1 and store.keys() == ["C"] and store.nbytes == 500
    assert store.buffer(1001) is None
    store.clear()
    assert store.nbytes == 0 and store.buffer(100).nbytes == 125


def test_a_snapshot_serves_a_prompt_as_far_as_its_mixes_agree():
    """Segments: an aLoRA switches the mix part-way; the part before it is shared with the base."""
    base_then_x = ((0, "base"), (5, "x"))
    base_then_y = ((0, "base"), (7, "y"))
    assert agreement(base_then_x, base_then_y) == 5
    assert agreement(base_then_x, one_mix("base")) == 5
    assert agreement(one_mix("base"), one_mix("base")) == math.inf
    assert agreement(one_mix("a"), one_mix("b")) == 0
    store = SnapshotStore(1000)
    store.put(base_then_x, list(range(10)), "s", 10)
    assert store.best(base_then_y, list(range(10)))[1] == 5
    assert store.best(one_mix("base"), list(range(3)))[1] == 3
    assert store.best(((0, "z"), (5, "x")), list(range(10)))[1] == 0


def test_auto_budget_is_sized_from_the_model():
    assert auto_budget(512, 512) == 64 << 20                  # tiny model: the floor
    assert auto_budget(96 * 1024, 4096) == 1 << 30            # a 0.7B model with a 4k context: the cap
    assert auto_budget(16 * 1024, 4096) == 4 * 4096 * 16 * 1024


def test_auto_budget_stays_within_the_memory_the_model_leaves():
    """A 7B model of 5.2 GB on an 8 GB laptop leaves about 1.6 GB of its working share: a full 1 GiB
    store would push it into swapping, which costs far more than the re-reads snapshots spare."""
    assert auto_budget(96 * 1024, 4096, spare=None) == 1 << 30                 # memory unknown: as before
    assert auto_budget(96 * 1024, 4096, spare=64 << 30) == 1 << 30            # plenty of room: the cap
    assert auto_budget(96 * 1024, 4096, spare=600 << 20) == 300 << 20         # half of what is left
    assert auto_budget(512, 512, spare=10 << 20) == 5 << 20                   # below the floor, too
    assert auto_budget(96 * 1024, 4096, spare=0) == 0                          # no room: none
    assert auto_budget(96 * 1024, 4096, spare=-(2 << 30)) == 0                 # past the memory already


def test_the_automatic_budget_fits_the_computer_the_model_runs_on(tiny, make_engine, monkeypatch):
    from adapters_backend.engines import llama_cpp_engine
    from adapters_backend.machine import MEMORY_SHARE

    monkeypatch.setattr(llama_cpp_engine, "total_memory", lambda: 10**15)
    roomy = make_engine(tiny.base, kv_snapshot_budget=None)
    assert roomy.kv_stats().budget == auto_budget(roomy.kv_bytes_per_token(), roomy.info["n_ctx"])
    host = int(MEMORY_SHARE * 10**15) - roomy._memory_left       # the model and its cache
    assert 0 < host < 64 << 20

    # A computer whose working share leaves 6 MiB beside the model and its cache: 3 MiB of snapshots
    total = int((host + (6 << 20)) / MEMORY_SHARE) + 1
    monkeypatch.setattr(llama_cpp_engine, "total_memory", lambda: total)
    tight = make_engine(tiny.base, kv_snapshot_budget=None)
    assert tight.kv_stats().budget == pytest.approx(3 << 20, abs=4)
    t = tokens(200, 12)
    for i in range(6):                                        # kept within it while mixes come and go
        tight.set_adapters(mix(tiny, 0.1 * (i + 1)))
        tight.next_token_logits(t)
        assert tight.kv_stats().nbytes <= 3 << 20

    # A model that already fills the share keeps no snapshots, and still answers exactly
    monkeypatch.setattr(llama_cpp_engine, "total_memory", lambda: host)
    full = make_engine(tiny.base, kv_snapshot_budget=None, logits_all=True)
    assert full.kv_stats() is None
    full.set_adapters(mix(tiny, 0.5))
    ref = make_engine(tiny.base, kv_snapshot_budget=0, logits_all=True)
    ref.set_adapters(mix(tiny, 0.5))
    assert_exact(full.next_token_logits(t), ref.next_token_logits(t))
    full.set_kv_budget(8 << 20)                               # a budget the user sets is theirs
    assert full.kv_stats().budget == 8 << 20


# ---------------------------------------------------------------------------------------------- exactness
def test_going_back_to_a_mix_restores_its_snapshot_exactly(tiny, engines):
    e, fresh = engines
    t1, t2 = tokens(200, 1), tokens(240, 2)[1:]
    e.set_adapters(mix(tiny, 0.7, -0.5))
    e.next_token_logits(t1)
    e.set_adapters(mix(tiny, 1.3, -0.5))                      # a strength change: another mix
    e.next_token_logits(t1)
    assert e._kv.last_restored == 0                           # never reuses the other mix's cache
    e.set_adapters(mix(tiny, 0.7, -0.5))                      # back: its snapshot is restored
    got = e.next_token_logits(t1 + t2)
    assert e._kv.last_restored == len(t1)
    assert_exact(got, fresh(mix(tiny, 0.7, -0.5), t1 + t2))
    assert not np.allclose(got, fresh(mix(tiny, 1.3, -0.5), t1 + t2), atol=1e-2)


def test_adapter_add_remove_and_per_layer_changes_are_other_mixes(tiny, engines):
    e, fresh = engines
    t = tokens(150, 3)
    steps = [mix(tiny, 0.7), mix(tiny, 0.7, 0.5), mix(tiny, 0.7, 0.5, layers=[(0, 0, 0.0)]),
             mix(tiny, 0.7, 0.5, layers=[(1, 1, 2.0)]), []]
    for m in steps:
        e.set_adapters(m)
        assert_exact(e.next_token_logits(t), fresh(m, t))
        assert e._kv.last_restored == 0                        # each is new: nothing to restore
    for m in reversed(steps[:-1]):                             # every one comes back from its snapshot
        e.set_adapters(m)
        longer = t + tokens(30, 4)[1:]
        assert_exact(e.next_token_logits(longer), fresh(m, longer))
        assert e._kv.last_restored == len(t)


def test_the_order_of_the_adapters_is_not_another_mix(tiny, engines):
    e, fresh = engines
    t = tokens(150, 13)
    e.set_adapters(mix(tiny, 0.7, 0.5))
    e.next_token_logits(t)
    e.set_adapters([])
    e.next_token_logits(t)
    swapped = list(reversed(mix(tiny, 0.7, 0.5)))
    e.set_adapters(swapped)
    got = e.next_token_logits(t + [500, 600])
    assert e._kv.last_restored == len(t)
    assert_exact(got, fresh(swapped, t + [500, 600]))


def test_an_edited_earlier_message_reuses_only_the_prefix_before_it(tiny, engines):
    e, fresh = engines
    t = tokens(180, 5)
    edited = t[:60] + tokens(130, 6)[1:]
    e.set_adapters(mix(tiny, 0.9))
    e.next_token_logits(t)
    e.set_adapters(mix(tiny, -0.4))
    e.next_token_logits(t)
    e.set_adapters(mix(tiny, 0.9))
    got = e.next_token_logits(edited)
    assert e._kv.last_restored == 60
    assert_exact(got, fresh(mix(tiny, 0.9), edited))
    e.set_adapters(mix(tiny, -0.4))                            # the live cache, trimmed at the edit
    assert_exact(e.next_token_logits(edited), fresh(mix(tiny, -0.4), edited))


def test_fused_and_separate_forms_share_the_cache_within_tolerance(tiny, make_engine, engines):
    """The key ignores the form: a prefix computed separately and continued fused (and back) gives
    the logits of either pure form. On an F32 base the fused factors stay F32 (see the docs for f16)."""
    _e, fresh = engines
    e = make_engine(tiny.base, logits_all=True, fuse_mixes=True, kv_snapshot_budget=64 << 20)
    m = [ActiveAdapter(tiny.l1_path, 0.7), ActiveAdapter(tiny.l2_path, -0.5), ActiveAdapter(tiny.l3_path, 1.2)]
    t1, t2 = tokens(150, 7), tokens(60, 8)[1:]
    e.set_adapters(m)
    e.next_token_logits(t1)
    assert e.mode == "separate" and e.fuse_now() and e.mode == "fused"
    got = e.next_token_logits(t1 + t2)                         # separate prefix, fused continuation
    assert e._reused == len(t1)
    assert_exact(got, fresh(m, t1 + t2))
    e._kv.invalidate()
    assert_exact(e.next_token_logits(t1 + t2), fresh(m, t1 + t2))   # fused from scratch, same result


def test_a_model_reload_drops_every_snapshot(tiny, engines):
    e, fresh = engines
    t = tokens(120, 9)
    e.set_adapters(mix(tiny, 0.7))
    e.next_token_logits(t)
    e.set_adapters(mix(tiny, 1.1))
    e.next_token_logits(t)
    assert len(e._kv.store) == 1
    e.load(tiny.base)
    assert len(e._kv.store) == 0 and e.kv_stats().entries == 0
    e.set_adapters(mix(tiny, 0.7))
    assert_exact(e.next_token_logits(t), fresh(mix(tiny, 0.7), t))
    assert e._reused == 0


def test_a_damaged_snapshot_is_discarded_not_used(tiny, engines, caplog):
    e, fresh = engines
    t = tokens(160, 10)
    e.set_adapters(mix(tiny, 0.7))
    e.next_token_logits(t)
    e.set_adapters(mix(tiny, 1.6))
    e.next_token_logits(t)
    (snap,) = e._kv.store._entries.values()
    snap.payload[:64] = 0xFF                                  # damaged in memory
    e.set_adapters(mix(tiny, 0.7))
    with caplog.at_level(logging.WARNING):
        got = e.next_token_logits(t)
    assert "did not restore" in caplog.text and e._kv.last_restored == 0
    assert snap not in e._kv.store._entries.values()
    assert_exact(got, fresh(mix(tiny, 0.7), t))


def test_a_snapshot_over_the_budget_is_skipped_with_a_log_line(tiny, make_engine, caplog):
    e = make_engine(tiny.base, kv_snapshot_budget=4096)         # far below one snapshot
    e.set_adapters(mix(tiny, 0.7))
    e.next_token_logits(tokens(100, 11))
    e.set_adapters(mix(tiny, 0.2))
    with caplog.at_level(logging.INFO):
        e.next_token_logits(tokens(100, 11))
    assert "larger than the snapshot budget" in caplog.text
    stats = e.kv_stats()
    assert stats.entries == 0 and stats.nbytes == 0 and stats.skipped == 1


def test_snapshots_never_exceed_the_budget(tiny, make_engine):
    e = make_engine(tiny.base, kv_snapshot_budget=256 << 10)
    t = tokens(200, 12)
    for i in range(12):
        e.set_adapters(mix(tiny, 0.1 * (i + 1)))
        e.next_token_logits(t)
        stats = e.kv_stats()
        assert stats.nbytes <= stats.budget
    assert 0 < stats.entries < 11 and stats.evicted > 0


# ---------------------------------------------------------------------------------------------- chat
def test_alternating_mixes_in_a_chat_answer_as_fresh_engines_do(tiny, make_engine):
    e = make_engine(tiny.base, kv_snapshot_budget=64 << 20)
    mixes = [mix(tiny, 0.8, 0.4), mix(tiny, -0.6)]
    chat = [ChatMessage("system", "You are terse. " * 20), ChatMessage("user", "Name three colours.")]
    for turn in range(4):
        m = mixes[turn % 2]
        e.set_adapters(m)
        chunks = list(e.generate(chat, GREEDY))
        text = "".join(c.text for c in chunks)
        ref = make_engine(tiny.base, kv_snapshot_budget=0)
        ref.set_adapters(m)
        assert text == "".join(c.text for c in ref.generate(chat, GREEDY))
        if turn >= 2:                                            # this mix saw all but the last two turns
            assert chunks[-1].prompt_cached >= chunks[-1].prompt_tokens // 2
        chat = [*chat, ChatMessage("assistant", text), ChatMessage("user", f"And number {turn + 2}?")]


def test_prewarm_reads_the_conversation_so_a_prompt_only_reads_what_follows(tiny, engines):
    e, fresh = engines
    chat = [ChatMessage("system", "Be brief. " * 80), ChatMessage("user", "Hello there."),
            ChatMessage("assistant", "Hi. How can I help?")]
    e.set_adapters(mix(tiny, 0.7))
    seen = []
    result = e.prewarm(chat, JobContext(on_progress=lambda d, t, m: seen.append((d, t))))
    assert result["complete"] and seen and seen[-1][0] == seen[-1][1] == result["tokens"]
    assert e.kv_stats().entries == 1                            # kept as a snapshot too
    follow = [*chat, ChatMessage("user", "Tell me a joke.")]
    prompt = e._template.render(follow)
    toks = e.tokenize(prompt.text, add_bos=prompt.add_bos)
    got = e.next_token_logits(toks)
    assert e._reused >= result["tokens"] - 2
    assert_exact(got, fresh(mix(tiny, 0.7), toks))


class StopAfter(JobContext):
    """Cancelled once `n` progress reports arrived (a slider moved while the pre-warm ran)."""

    def __init__(self, n: int):
        super().__init__(on_progress=lambda d, t, m: self._count())
        self.n, self.reports = n, 0

    def _count(self):
        self.reports += 1
        if self.reports >= self.n:
            self.cancel()


def test_a_stopped_prewarm_keeps_what_it_read_and_the_prompt_continues_from_there(tiny, engines):
    e, fresh = engines
    chat = [ChatMessage("system", "word " * 300), ChatMessage("user", "Go on.")]
    e.set_adapters(mix(tiny, 0.5, 0.5))
    result = e.prewarm(chat, StopAfter(1))
    assert not result["complete"]
    read = e._kv.n_live
    assert 0 < read < result["tokens"]
    prompt = e._template.render(chat)
    toks = e.tokenize(prompt.text, add_bos=prompt.add_bos)
    got = e.next_token_logits(toks)
    assert e._reused == read                                     # continued, not started over
    assert_exact(got, fresh(mix(tiny, 0.5, 0.5), toks))


def test_a_prewarm_stopped_after_its_last_chunk_leaves_the_snapshot_to_the_next_switch(tiny, engines):
    """A Send arriving as the pre-warm reads its last chunk must not wait for a snapshot copy: the
    answer continues on the live cache, and a later switch keeps it as usual."""
    e, fresh = engines
    chat = [ChatMessage("system", "word " * 300), ChatMessage("user", "Go on.")]
    e.set_adapters(mix(tiny, 0.5, 0.5))
    n_chunks = -(-len(e.prompt_tokens(chat, add_generation_prompt=False)) // llama_prompts.PREWARM_CHUNK)
    result = e.prewarm(chat, StopAfter(n_chunks))                 # cancelled at the last report
    assert result["complete"] and e._kv.n_live == result["tokens"]
    assert e.kv_stats().entries == 0                              # no copy made for the waiting answer
    e.set_adapters(mix(tiny, 0.9))
    toks = e.prompt_tokens(chat)
    assert_exact(e.next_token_logits(toks), fresh(mix(tiny, 0.9), toks))
    assert e.kv_stats().entries == 1                              # the switch kept the live cache


def test_an_allocation_failure_skips_the_snapshot_with_a_log_line(tiny, engines, monkeypatch, caplog):
    from adapters_backend.engines import kv_snapshots

    e, fresh = engines
    t = tokens(120, 14)
    e.set_adapters(mix(tiny, 0.7))
    e.next_token_logits(t)

    def no_memory(*_a, **_k):
        raise MemoryError

    monkeypatch.setattr(kv_snapshots, "_new_buffer", no_memory)
    e.set_adapters(mix(tiny, 1.2))
    with caplog.at_level(logging.INFO):
        got = e.next_token_logits(t)                            # the switch goes on, without a snapshot
    assert "out of memory" in caplog.text and e.kv_stats().skipped == 1 and e.kv_stats().entries == 0
    assert_exact(got, fresh(mix(tiny, 1.2), t))
