"""How the llama.cpp engine reads prompts: through the KV cache of the mix that computed it.

`PromptReading` is a part of `LlamaCppEngine` (a mixin, kept apart from loading models and managing
adapters): it evaluates a prompt with `LlamaKV` (llama_kv.py), so only what no cache of the wanted mix
holds is read, segment by segment when activated LoRAs (alora.py) start part-way; it reads a
conversation ahead of the next prompt (`prewarm`), and it holds the snapshot budget. It uses the
engine's `_llm`, `_kv`, `_handles`, `_mix`, `_mix_key`, `_weighted`, `_target`, `_template`,
`_builder`, `_swap_in_fused` and `_set_abort`.
"""
from __future__ import annotations

from collections.abc import Sequence

from ..errors import EngineError
from ..jobs import JobContext
from . import alora, llama_log
from .base import ChatMessage
from .kv_snapshots import StoreStats, auto_budget, mix_key, resized
from .llama_kv import context_tokens, kv_bytes_per_token

PREWARM_CHUNK = 128                    # tokens per pre-warm step (a cancel waits for at most one)


class PromptReading:
    _reused = 0                        # prompt tokens the last prefill took from a cache
    _memory_left: int | None = None    # computer memory the loaded model leaves (machine.spare_memory)

    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token takes in this context (from the model's shape)."""
        return kv_bytes_per_token(self._require_model(), self._base.arch_name, self.options.get("type_k") == 0)

    def set_kv_budget(self, budget: int | None) -> None:
        """Bytes of KV snapshots to keep (None: automatic, 0: none). Takes effect at once."""
        self._kv_budget = budget
        if self._kv is not None:
            size = (auto_budget(self.kv_bytes_per_token(), context_tokens(self._llm), self._memory_left)
                    if budget is None else budget)
            self._kv.store = resized(self._kv.store, int(size))

    def forget_kv(self, snapshots: bool = False) -> None:
        """Drop the live KV cache (and every snapshot with `snapshots=True`)."""
        if self._kv is not None:
            self._kv.invalidate()
            if snapshots and self._kv.store is not None:
                self._kv.store.clear()

    def kv_stats(self) -> StoreStats | None:
        """What the snapshot store holds now (None: no model, or snapshots are off)."""
        return self._kv.store.stats() if self._kv is not None and self._kv.store is not None else None

    def _invocation(self, handle: int) -> tuple[int, ...]:
        """The aLoRA invocation tokens of a loaded adapter (empty: an ordinary LoRA)."""
        got = self._invocations.get(handle)
        if got is None:
            ptr = self._handles.loaded.get(handle)
            n = int(self._lib.llama_adapter_get_alora_n_invocation_tokens(ptr)) if ptr else 0
            arr = self._lib.llama_adapter_get_alora_invocation_tokens(ptr) if n else None
            got = tuple(int(arr[i]) for i in range(n)) if arr else ()
            self._invocations[handle] = got
        return got

    def _segments(self, tokens: Sequence[int], activate: bool = True) -> list[tuple[int, str, list]]:
        """[(first position, KV key, context adapters)] for a prompt: one segment for an ordinary mix;
        with aLoRAs, one more from each invocation on (alora.py)."""
        invocations = [self._invocation(loaded.handle) if a.strength else () for a, loaded in self._mix]
        if not any(invocations):
            return [(0, self._mix_key, self._target())]
        out = []
        for start, active in alora.plan(tokens, invocations, activate):
            entries = [self._mix[i] for i in sorted(active)]
            out.append((start, mix_key([a for a, _l in entries]),
                        [(w.handle, s) for w, s in self._weighted(entries)]))
        return out

    def next_token_logits(self, tokens: Sequence[int], ctx: JobContext | None = None):
        """Logits after `tokens` under the current mix, evaluated the way a prompt is (reusing the live
        cache or a stored snapshot of this mix); the cache then holds `tokens`."""
        import numpy as np

        self._require_model()
        tokens = [int(t) for t in tokens]
        self._swap_in_fused()
        if not self._prefill(tokens, ctx or JobContext()):
            raise EngineError("cancelled")
        row = self._lib.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(row, shape=(self._llm.n_vocab(),)).copy()

    def prewarm(self, messages: Sequence[ChatMessage], ctx: JobContext | None = None,
                min_reuse: float = 0.0) -> dict:
        """Read the conversation `messages` under the current mix into the KV cache ahead of the next
        prompt, in chunks; `ctx.cancel()` stops it within one chunk, keeping what it read (a prompt sent
        then continues from there). Progress goes to `ctx.report(done, total, …)`. The result is kept as
        a snapshot too, so leaving this mix later costs nothing. With `min_reuse`, nothing is read unless
        a cache of this mix already holds that fraction of the conversation (bringing a recent mix up to
        date, never reading a whole conversation for it). Returns {"tokens", "reused", "complete"}."""
        llm = self._require_model()
        ctx = ctx or JobContext()
        tokens = self.prompt_tokens(messages, add_generation_prompt=False)
        if not tokens or len(tokens) >= context_tokens(llm) - 1:
            return {"tokens": len(tokens), "reused": 0, "complete": False}
        if min_reuse > 0:
            segments = tuple((s, k) for s, k, _t in self._segments(tokens, activate=False))
            if self._kv.reusable(segments, tokens) < min_reuse * len(tokens):
                return {"tokens": len(tokens), "reused": 0, "complete": False}
        self._swap_in_fused()
        if self._builder is not None:
            self._builder.set_busy(True)
        try:
            complete = self._prefill(tokens, ctx, chunk=PREWARM_CHUNK, message="reading the conversation",
                                     activate=False)
            if complete and not ctx.cancelled():   # cancelled: an answer waits; it needs no snapshot
                self._kv.stash()
        finally:
            if self._builder is not None:
                self._builder.set_busy(False)
        return {"tokens": len(tokens), "reused": self._reused, "complete": complete}

    def _prefill(self, tokens: Sequence[int], ctx: JobContext, chunk: int | None = None,
                 message: str = "reading the prompt", activate: bool = True) -> bool:
        """Bring the live cache to `tokens` under the current mix, evaluating only what no cache holds
        (segment by segment when aLoRAs start part-way), with progress reports; False if cancelled
        (what was read stays). Leaves the last token's logits ready and the last segment's adapters
        in the context, for sampling."""
        kv = self._kv
        segments = self._segments(tokens, activate)
        self._reused = reused = kv.prepare(tuple((s, k) for s, k, _t in segments), tokens)
        total = len(tokens)
        if kv.logits_ready(total):
            self._handles.set_active(segments[-1][2])
            return True
        step = max(1, min(chunk or self.options["n_batch"], self.options["n_batch"]))
        report = (lambda done, n: ctx.report(done, n, message)) if total - reused > step else None
        self._set_abort(ctx)
        try:
            with llama_log.capture() as cap:
                for i, (_start, _key, target) in enumerate(segments):
                    end = segments[i + 1][0] if i + 1 < len(segments) else total
                    if end <= kv.n_live and i + 1 < len(segments):
                        continue
                    self._handles.set_active(target)
                    if not kv.extend(tokens[:end], step, ctx.cancelled, report, total):
                        return False
                return True
        except RuntimeError as exc:
            kv.invalidate()
            raise EngineError(f"llama.cpp failed while reading the prompt: {cap.reason() or exc}") from exc
        finally:
            self._set_abort(None)

    def prompt_tokens(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> list[int]:
        """The tokens the chat template makes of `messages` (with the assistant's turn opened, or not)."""
        prompt = self._require_model() and self._template.render(messages, add_generation_prompt)
        return list(self._llm.tokenize(prompt.text.encode("utf-8"), add_bos=prompt.add_bos, special=True))


__all__ = ["PREWARM_CHUNK", "PromptReading"]
