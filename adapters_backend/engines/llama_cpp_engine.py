"""The llama.cpp engine (llama-cpp-python): any GGUF base, several runtime LoRA adapters at once, each
with its own strength, changed between any two generations without reloading the model.

How a mix runs:
- Every adapter of the mix is checked against the model (the compatibility check every part of LoRA
  Deck uses) and loaded once with llama.cpp's runtime adapter API (converted first if it is not a
  GGUF LoRA; per-layer strengths use a derived file). Removing one frees it.
- A new mix or strength takes effect at once through per-adapter scales (`llama_set_adapters_lora`).
- A mix of two or more adapters that stays unchanged for a generation is fused in the background into
  ONE adapter file (factors stacked, strengths folded into B) and swapped in before the next
  generation: llama.cpp's cost grows with the number of adapters, hardly with rank. Any slider move
  switches straight back to the separate adapters, so a change still applies before the next token.
- The KV cache is keyed by the mix that computed it (llama_kv.py): a prompt reuses the live cache
  only under the same mix; a change of mix saves the live cache as a snapshot (kv_snapshots.py, a
  memory-bounded LRU store) and restores the stored snapshot of the new mix that shares the longest
  prefix with the prompt, so going back to a recent mix evaluates only the new tokens. `prewarm()`
  reads a conversation under the current mix ahead of the next prompt, in chunks that stop when asked.

Single-threaded: call it from one thread. `JobContext.cancel()` from any thread stops a generation
before its next token, and a long prompt evaluation through llama.cpp's abort callback.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..chat import ReplyText, template_from_metadata
from ..core.base_model import load_base_model
from ..demo import is_demo_model
from ..errors import BaseModelError, EngineError
from ..file_identity import file_identity, source_identity
from ..gguf.header import is_gguf
from ..jobs import JobContext
from ..machine import spare_memory, total_memory
from . import llama_log
from .adapter_files import per_layer_file, resolve_adapter_gguf
from .base import STRENGTH_RANGE, ActiveAdapter, ChatMessage, EngineCapabilities, SamplingParams, TokenChunk
from .context_window import context_exceeded
from .fold import FoldPart
from .fused_builder import FusedBuilder, mix_signature
from .kv_snapshots import BASE_KEY, mix_key
from .llama_fit import AUTO_GPU_LAYERS, open_fitted
from .llama_kv import LlamaKV, context_tokens
from .llama_probe import probe_model
from .llama_prompts import PromptReading
from .llama_runtime import AdapterHandles, last_logits, token_bytes
from .nonfinite import finite, not_a_number

log = logging.getLogger(__name__)



@dataclass
class _Loaded:
    """One adapter file loaded into llama.cpp."""

    handle: int
    path: Path                         # the GGUF llama.cpp read
    identity: str                      # file_identity(path) when loaded
    label: str


class LlamaCppEngine(PromptReading):
    def __init__(self, n_ctx: int = 4096, n_threads: int | None = None, n_threads_batch: int | None = None,
                 n_gpu_layers: int = AUTO_GPU_LAYERS, n_batch: int = 512, fuse_mixes: bool = True, use_mmap: bool = True,
                 logits_all: bool = False, kv_snapshot_budget: int | None = None):
        """`n_gpu_layers`: layers on the GPU (negative: automatic, see llama_fit.gpu_layer_tries).
        `kv_snapshot_budget`: bytes of KV snapshots kept for recent mixes (None: sized from the model,
        see kv_snapshots.auto_budget; 0: keep none)."""
        import llama_cpp

        self.options = dict(n_ctx=int(n_ctx), n_threads=n_threads, n_threads_batch=n_threads_batch or n_threads,
                            n_gpu_layers=int(n_gpu_layers), n_batch=int(n_batch), use_mmap=bool(use_mmap))
        if logits_all:      # every position's logits (parity checks); costs memory, so off for chat
            self.options.update(logits_all=True, type_k=0, type_v=0)
        self.fuse_mixes = bool(fuse_mixes)
        self.capabilities = EngineCapabilities(
            hot_switch=True, multi_adapter=True, negative_strength=True, per_layer_strength=True, merge=False,
            gpu_offload=bool(llama_cpp.llama_supports_gpu_offload()), strength_range=STRENGTH_RANGE,
            kv_snapshots=True, continue_answer=True)
        self._lib = llama_cpp
        self._llm = None
        self._base = None                       # BaseModelInfo of the loaded model
        self._template = None
        self._handles: AdapterHandles | None = None
        self._loaded: dict[tuple[str, str], _Loaded] = {}   # (gguf path, identity) -> loaded adapter
        self._resolved: dict[tuple[str, str], Path] = {}     # (user path, identity) -> gguf path
        self._notes: dict[str, list[str]] = {}                # user path -> converter warnings/notes
        self._mix: list[tuple[ActiveAdapter, _Loaded]] = []
        self._mix_key = BASE_KEY                                # the KV key of the mix (kv_snapshots.mix_key)
        self._invocations: dict[int, tuple[int, ...]] = {}    # handle -> aLoRA invocation tokens
        self._fused: tuple[str, _Loaded] | None = None      # (mix signature, loaded fused adapter)
        self._builder: FusedBuilder | None = None
        self._abort_job: JobContext | None = None
        self._abort_cb = llama_cpp.ggml_abort_callback(self._should_abort)   # kept referenced
        self._no_abort = llama_cpp.ggml_abort_callback()                      # a NULL callback
        self._vocab = None
        self._kv_budget = kv_snapshot_budget
        self._kv: LlamaKV | None = None
        self.info: dict = {}

    # ------------------------------------------------------------------ model
    def load(self, model_path: str | Path, ctx: JobContext | None = None) -> dict:
        """Load a GGUF base model (replacing any loaded one). Returns a description of it."""
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise BaseModelError(path, "file not found" if not path.exists() else
                                 "not a file (a GGUF model is one .gguf file)")
        if not is_gguf(path):
            raise BaseModelError(path, "not a GGUF file (no GGUF magic at the start); the llama.cpp engine "
                                       "needs a .gguf model")
        base = load_base_model(path, need_table=False)    # any family llama.cpp runs; refuses adapters
        if not is_demo_model(path):     # the app's own file; any other that would crash llama.cpp does so
            probe_model(path, ctx, tuple(base.gguf_parts))     # in a child process, not here
        self.close()
        try:          # a failure past this point leaves nothing that looks loaded
            llm, fit = open_fitted(path, ctx, self.options, base, gpu=self.capabilities.gpu_offload)
            self._llm, self._base = llm, base
            self._handles = AdapterHandles(llm)
            self._builder = FusedBuilder(keep_f32=base.full_precision) if self.fuse_mixes else None
            eos, bos = llm.token_eos(), llm.token_bos()
            text = llm._model.token_get_text  # the token strings the template needs
            tokens = {"bos_token": text(bos) if bos >= 0 else "", "eos_token": text(eos) if eos >= 0 else ""}
            self._template = template_from_metadata(llm.metadata, **tokens)
            self._vocab = self._lib.llama_model_get_vocab(llm.model)
            self._kv = LlamaKV(llm, None)
            self._memory_left = spare_memory(fit.host_bytes, total_memory())   # where snapshots live
            self.set_kv_budget(self._kv_budget)
            self.info = {
                "path": str(path), "engine": "llama.cpp", "architecture": base.arch_name,
                "name": llm.metadata.get("general.name", path.stem), "n_ctx": context_tokens(llm),
                "n_ctx_train": fit.trained,
                "n_layers": int(self._lib.llama_model_n_layer(llm.model)),
                "n_params": int(self._lib.llama_model_n_params(llm.model)),
                "n_gpu_layers": fit.gpu_layers, "device": fit.device, "chat_template": self._template.source,
                "thinking_switch": self._template.thinking_switch,
                "note": " ".join([*fit.notes, self._template.note]).strip(), "kv_bytes_per_token": self.kv_bytes_per_token(),
            }
        except BaseException:
            self.close()
            raise
        return dict(self.info)

    @property
    def llm(self):
        """The llama_cpp.Llama object (for diagnostics; do not change its adapters behind the engine)."""
        return self._llm

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def close(self) -> None:
        """Free adapters (after detaching them), the fused-file worker and the model."""
        if self._builder is not None:
            self._builder.close()
            self._builder = None
        if self._handles is not None:
            self._handles.free_all()
            self._handles = None
        self._loaded.clear()
        self._mix = []
        self._mix_key = BASE_KEY
        self._invocations.clear()
        self._fused = None
        if self._kv is not None and self._kv.store is not None:
            self._kv.store.clear()
        self._kv = None
        if self._llm is not None:
            self._llm.close()
            self._llm = None
        self._base = self._template = None
        self._resolved.clear()
        self._notes.clear()

    def _require_model(self):
        if self._llm is None:
            raise EngineError("no model is loaded; load a GGUF model first")
        return self._llm

    # ------------------------------------------------------------------ adapters
    def set_adapters(self, adapters: Sequence[ActiveAdapter], ctx: JobContext | None = None) -> None:
        """Make `adapters` the whole mix. On any error nothing changes: the previous mix stays active."""
        self._require_model()
        lo, hi = STRENGTH_RANGE
        for a in adapters:
            if not lo <= a.strength <= hi:
                raise EngineError(f"strength {a.strength:g} of {a.display_name} is outside [{lo:g}, {hi:g}]")
        fresh: list[_Loaded] = []
        mix: list[tuple[ActiveAdapter, _Loaded]] = []
        try:
            for a in adapters:
                gguf = self._resolve(a, ctx)
                key = (str(gguf), file_identity(gguf))
                loaded = self._loaded.get(key)
                if loaded is None:
                    loaded = _Loaded(self._handles.init(gguf, a.display_name), gguf, key[1], a.display_name)
                    self._loaded[key] = loaded
                    fresh.append(loaded)
                mix.append((a, loaded))
        except BaseException:
            for loaded in fresh:                 # never applied: free them, keep the previous mix
                self._loaded.pop((str(loaded.path), loaded.identity), None)
                self._handles.free(loaded.handle)
            raise
        self._mix = mix
        self._mix_key = mix_key(adapters)
        self._apply()
        self._free_unused()

    def _resolve(self, a: ActiveAdapter, ctx: JobContext | None) -> Path:
        src = Path(a.path).expanduser()
        try:
            key = (str(src.resolve()), source_identity(src))
        except OSError:
            key = (str(src), "")
        gguf = self._resolved.get(key)
        if gguf is None or not gguf.exists():
            gguf, notes = resolve_adapter_gguf(src, self._base, ctx, label=a.display_name)
            self._resolved[key] = gguf
            self._notes[str(src)] = notes
        if a.layer_scales:
            gguf = per_layer_file(gguf, a.layer_scales)
        return gguf

    def _weighted(self, mix=None) -> list[tuple[_Loaded, float]]:
        """The mix as (loaded adapter, total strength), zero strengths left out, duplicates summed."""
        total: dict[int, list] = {}
        for a, loaded in self._mix if mix is None else mix:
            entry = total.setdefault(loaded.handle, [loaded, 0.0])
            entry[1] += a.strength
        return [(loaded, s) for loaded, s in total.values() if s != 0.0]

    def _signature(self, weighted) -> str | None:
        """The fused file's identity for a mix; None when it is not fused (one adapter, or an aLoRA in
        it: an activated LoRA acts from its invocation on only, which one fused file cannot do)."""
        if len(weighted) < 2 or any(self._invocation(w.handle) for w, _s in weighted):
            return None
        return mix_signature([(f"{w.path}|{w.identity}", s) for w, s in weighted])

    def _target(self) -> list[tuple[int, float]]:
        """The context's adapters for the whole mix: the fused adapter if it matches, else separate."""
        weighted = self._weighted()
        sig = self._signature(weighted)
        if self._fused is not None and sig is not None and self._fused[0] == sig:
            return [(self._fused[1].handle, 1.0)]
        return [(w.handle, s) for w, s in weighted]

    def _apply(self) -> None:
        # The KV cache stays: it is tagged with the mix that computed it (llama_kv.py), and the next
        # evaluation reuses it only as far as that is the mix it wants.
        self._handles.set_active(self._target())

    def _free_unused(self) -> None:
        used = {loaded.handle for _a, loaded in self._mix}
        active = {h for h, _s in self._handles.active}
        for key, loaded in list(self._loaded.items()):
            if loaded.handle not in used and loaded.handle not in active:
                del self._loaded[key]
                self._handles.free(loaded.handle)
        if self._fused is not None and self._fused[1].handle not in active:
            self._handles.free(self._fused[1].handle)
            self._fused = None

    def eval_logits(self, tokens: Sequence[int]):
        """Logits (n_tokens, n_vocab) for a token sequence under the current mix (needs logits_all=True)."""
        import numpy as np

        self._require_model()
        if not self.options.get("logits_all"):
            raise EngineError("eval_logits needs an engine made with logits_all=True")
        tokens = [int(t) for t in tokens]
        store, self._kv.store = self._kv.store, None      # a fresh evaluation: no snapshot takes part
        try:
            self._kv.invalidate()
            self._prefill(tokens, JobContext())             # segment by segment for aLoRAs
            out = np.array(self._llm.scores[: len(tokens)], dtype=np.float32)
            self._kv.invalidate()
        finally:
            self._kv.store = store
        return out

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        self._require_model()
        return list(self._llm.tokenize(text.encode(), add_bos=add_bos, special=True))

    def adapters(self) -> list[dict]:
        """The current mix as the engine runs it (for `/adapters` and the GUI)."""
        active = {h for h, _s in self._handles.active} if self._handles else set()
        fused = self._fused is not None and self._fused[1].handle in active
        return [{"name": a.display_name, "path": a.path, "strength": a.strength,
                 "layer_scales": a.layer_scales, "gguf": str(loaded.path),
                 "notes": list(self._notes.get(str(Path(a.path).expanduser()), [])),
                 "running": "fused" if fused and a.strength else ("separate" if loaded.handle in active else "off")}
                for a, loaded in self._mix]

    @property
    def mode(self) -> str:
        """"base" (no adapter active), "separate" or "fused"."""
        if not self._handles or not self._handles.active:
            return "base"
        fused = self._fused is not None and self._handles.active == ((self._fused[1].handle, 1.0),)
        return "fused" if fused else "separate"

    # ------------------------------------------------------------------ fusion
    def _fusion_parts(self):
        weighted = self._weighted()
        return self._signature(weighted), [FoldPart(w.path, s) for w, s in weighted]

    def _request_fusion(self) -> None:
        if self._builder is None or self._llm is None:
            return
        sig, parts = self._fusion_parts()
        if sig is not None and (self._fused is None or self._fused[0] != sig):
            self._builder.request(sig, parts)

    def _swap_in_fused(self, wait: float | None = 0.0) -> bool:
        """Use the fused file for the current mix if it is built (waiting up to `wait` s; None = no limit)."""
        if self._builder is None:
            return False
        sig, _parts = self._fusion_parts()
        if sig is None:
            return False
        if self._fused is not None and self._fused[0] == sig:
            self._apply()
            return True
        path = self._builder.result(sig) if wait == 0.0 else self._builder.wait(sig, wait)
        if path is None:
            return False
        try:
            handle = self._handles.init(path, "fused mix")
        except Exception as exc:  # keep running the separate adapters
            log.warning("could not load the fused mix (%s); running the adapters separately", exc)
            return False
        old = self._fused
        self._fused = (sig, _Loaded(handle, path, file_identity(path), "fused mix"))
        self._apply()
        if old is not None:
            self._handles.free(old[1].handle)
        return True

    def wait_for_fusion(self, timeout: float | None = 60.0) -> bool:
        """Wait until the background build for the current mix is done; True if a fused file is ready
        (it is swapped in at the next generation)."""
        if self._builder is None:
            return False
        sig, _parts = self._fusion_parts()
        if sig is None:
            return False
        if self._fused is not None and self._fused[0] == sig:
            return True
        return self._builder.wait(sig, timeout) is not None

    def fuse_now(self, timeout: float | None = 60.0) -> bool:
        """Build (if needed) and switch to the fused form of the current mix now; True if it runs fused."""
        self._require_model()
        if self._builder is None:
            return False
        sig, parts = self._fusion_parts()
        if sig is None:
            return False
        if self._fused is None or self._fused[0] != sig:
            self._builder.request(sig, parts, urgent=True)
        return self._swap_in_fused(wait=timeout)

    # ------------------------------------------------------------------ generation
    def _should_abort(self, _data) -> bool:
        job = self._abort_job
        return bool(job is not None and job.cancelled())

    def _set_abort(self, job: JobContext | None) -> None:
        self._abort_job = job
        self._lib.llama_set_abort_callback(self._llm.ctx, self._abort_cb if job is not None else self._no_abort,
                                         None)

    def generate(self, messages: Sequence[ChatMessage], params: SamplingParams | None = None,
                 ctx: JobContext | None = None) -> Iterator[TokenChunk]:
        """Stream the assistant's reply to `messages`. Raises EngineError at once for a conversation that
        does not fit the context; the iterator ends with a chunk whose `finished` is True."""
        llm = self._require_model()
        params = params or SamplingParams()
        ctx = ctx or JobContext()
        prompt = self._template.render(messages, thinking=params.thinking)
        tokens = llm.tokenize(prompt.text.encode("utf-8"), add_bos=prompt.add_bos, special=True)
        n_ctx = context_tokens(llm)
        if len(tokens) >= n_ctx - 1:
            longer = ("" if n_ctx >= (self.info.get("n_ctx_train") or n_ctx + 1)      # the model allows no more
                      else " or load the model with a longer context")
            raise EngineError(context_exceeded(messages, len(tokens), n_ctx, longer))
        self._swap_in_fused()
        return self._stream(tokens, prompt.stops, params, ctx, max(1, min(params.max_tokens, n_ctx - len(tokens))),
                            strip_leading=not prompt.continues, opened=prompt.opened)

    def complete(self, prompt: str, params: SamplingParams | None = None,
                 ctx: JobContext | None = None) -> Iterator[TokenChunk]:
        """Stream a plain continuation of `prompt`, without the chat template (OpenAI's /v1/completions)."""
        llm = self._require_model()
        params = params or SamplingParams()
        tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
        n_ctx = context_tokens(llm)
        if len(tokens) >= n_ctx - 1:
            raise EngineError(f"the prompt ({len(tokens):,} tokens) does not fit the context of {n_ctx:,} tokens")
        self._swap_in_fused()
        return self._stream(tokens, (), params, ctx or JobContext(),
                            max(1, min(params.max_tokens, n_ctx - len(tokens))), strip_leading=False)

    def _stream(self, tokens, stops, params: SamplingParams, ctx: JobContext, max_new: int,
                strip_leading: bool = True, opened: str = "") -> Iterator[TokenChunk]:
        llm = self._llm
        seed = params.seed if params.seed is not None and params.seed >= 0 else random.SystemRandom().randrange(2**31)
        llm.set_seed(int(seed))
        reply = ReplyText(stops, strip_leading=strip_leading, opened=opened)
        n_prompt = len(tokens)
        gen = llm.generate(tokens, top_k=int(params.top_k), top_p=float(params.top_p), min_p=float(params.min_p),
                           temp=float(params.temperature), repeat_penalty=float(params.repeat_penalty), reset=True)
        finish, n, token = None, 0, None
        t0 = time.perf_counter()
        t_first = t_last = None
        prompt_seconds = None
        cached = None

        def stats(text: str, tok, k: int = 1, done: bool = False) -> TokenChunk:
            tps = (n - 1) / (t_last - t_first) if n > 1 and t_last > t_first else None
            return TokenChunk(text, tok, k, done, finish if done else None, n_prompt, n, tps, prompt_seconds,
                              cached)

        try:
            if self._builder is not None:
                self._builder.set_busy(True)       # no fused-file building while we decode
            if ctx.cancelled() or not self._prefill(tokens, ctx):
                finish = "cancelled"
            else:
                cached = self._reused
                token = self._advance(gen, ctx)
                prompt_seconds = time.perf_counter() - t0
                if token is None:
                    finish = "cancelled"
            while finish is None:
                self._require_numbers(n)
                if self._lib.llama_vocab_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                n += 1
                t_last = time.perf_counter()
                t_first = t_first or t_last
                text = reply.push(token_bytes(self._vocab, token))
                if reply.stopped:
                    finish = "stop"
                    yield stats(text, token)
                    break
                yield stats(text, token)
                if n >= max_new:
                    finish = "length"
                    break
                if ctx.cancelled():
                    finish = "cancelled"
                    break
                token = self._advance(gen)
                if token is None:
                    finish = "stop"
        finally:
            gen.close()
            if self._builder is not None:
                self._builder.set_busy(False)
            self._request_fusion()
        yield stats(reply.flush(), None, 0, True)

    def _require_numbers(self, produced: int) -> None:
        logits = last_logits(self._llm, self._vocab)
        if logits is not None and not finite(logits):
            self._kv.invalidate()               # what overflowed is never read again
            raise not_a_number([a for a, _loaded in self._mix], produced)

    def _advance(self, gen, prompt_job: JobContext | None = None):
        """The next token, None at the end. With `prompt_job` the prompt is evaluated first: llama.cpp's
        per-node abort check is on while it runs (it can be long), and a cancel then gives None too."""
        if prompt_job is not None:
            self._set_abort(prompt_job)
        try:
            with llama_log.capture() as cap:
                return next(gen)
        except StopIteration:
            return None
        except RuntimeError as exc:
            self._kv.invalidate()              # aborted or failed: the KV holds a partial evaluation
            if prompt_job is not None and prompt_job.cancelled():
                return None
            doing = "reading the prompt" if prompt_job is not None else "generating"
            raise EngineError(f"llama.cpp failed while {doing}: {cap.reason() or exc}") from exc
        finally:
            if prompt_job is not None:
                self._set_abort(None)


__all__ = ["LlamaCppEngine"]
