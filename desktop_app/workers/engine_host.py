"""EngineHost: the one object that talks to the inference engine, on its own thread.

Engines are single-threaded, so every call (load, set adapters, generate, close) runs on the host's
QThread, one after another, in the order the GUI asked. The GUI sends requests through queued
signals and hears back through signals; nothing it calls here blocks. Cancelling is the exception:
it only sets a flag (thread-safe) that the running job checks at every token, so "Stop" acts at
once even while the engine thread is busy.

Each generation request carries the full adapter mix it must run with; the host applies it only
when it differs from what the engine has, so a slider moved between two generations changes the
second one, and compare/sweep runs can interleave mixes safely.

A pre-warm (read the conversation under the current mix ahead of the next Send, engines with KV
snapshots only) is a job like the others, with two rules: it never delays a generation (a generation
asked for while it runs stops it at its next chunk, and one already waiting makes it skip), and what
it read stays in the engine's cache, so the generation continues from there.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QThread, Signal, Slot

from adapters_backend.errors import JobCancelled
from adapters_backend.jobs import JobContext
from adapters_backend.model_ref import REMOTE_ENGINES

if TYPE_CHECKING:
    from adapters_backend.engines.base import ActiveAdapter, EngineCapabilities

log = logging.getLogger(__name__)

BATCH_S = 0.015          # how often streamed text is handed to the GUI thread at most


@dataclass
class LoadRequest:
    path: str
    engine_kind: str                      # "llama.cpp" | "torch"
    options: dict = field(default_factory=dict)   # n_ctx, n_threads, n_gpu_layers …
    label: str = ""


@dataclass
class GenerateRequest:
    request_id: int
    messages: list                        # [(role, content)]
    params: dict                          # sampling parameters by name
    adapters: list[ActiveAdapter]         # the whole mix
    tag: object = None                    # caller's marker (which pane the answer belongs to)
    fit_context: bool = False             # a chat: leave out its oldest turns when it outgrows the context


@dataclass(frozen=True)
class LoadedModel:
    """The model the engine holds, as the GUI shows it."""
    path: str                             # file, folder, Hub id or server URL
    engine: str                           # "llama.cpp" | "torch" | a remote kind
    label: str
    capabilities: EngineCapabilities | None = None
    info: dict = field(default_factory=dict, compare=False)   # what engine.load() returned

    @property
    def n_ctx(self) -> int | None:
        return int(self.info["n_ctx"]) if self.info.get("n_ctx") else None

    @property
    def n_layers(self) -> int | None:
        return int(self.info["n_layers"]) if self.info.get("n_layers") else None


@dataclass
class PrewarmRequest:
    job_id: int
    messages: list                        # [(role, content)] — the conversation so far
    adapters: list                        # the whole mix, as in GenerateRequest
    min_reuse: float = 0.0                # read nothing unless a cache of the mix holds this fraction


@dataclass
class GenerationStats:
    request_id: int
    tokens: int
    seconds: float                        # first token to last, as seen on the engine thread
    prompt_tokens: int | None
    cancelled: bool
    finish_reason: str | None = None
    engine_tps: float | None = None       # the engine's own figure, when it reports one
    tag: object = None
    prompt_cached: int | None = None      # prompt tokens the engine took from a KV cache or snapshot
    left_out: int | None = None           # oldest messages the model was not given (None: never started)

    @property
    def tokens_per_second(self) -> float:
        if self.engine_tps:
            return self.engine_tps
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


class EngineHost(QObject):
    # -- reports (emitted on the engine thread, delivered queued on the GUI thread) --
    load_progressed = Signal(float, float, str)
    model_loaded = Signal(object)           # LoadedModel
    model_load_failed = Signal(object, bool)  # exception, whether the model loaded before is still loaded
    adapters_applied = Signal(object)       # the mix now active
    adapters_failed = Signal(int, object)   # request id, exception (the previous mix stays)
    token_streamed = Signal(int, str, int)  # request id, text, number of tokens in it (batched)
    generation_finished = Signal(object)    # GenerationStats
    generation_failed = Signal(int, object)
    busy_changed = Signal(bool)
    prompt_progressed = Signal(int, float, float)     # request id, prompt tokens read, of total
    prewarm_progressed = Signal(int, float, float)    # pre-warm id, tokens read, of total
    prewarm_finished = Signal(int, object)            # pre-warm id, engine's result dict (None: not run)
    kv_stats_changed = Signal(object)                 # dict of the engine's KV snapshot store (None: none)
    # -- requests (emitted on the GUI thread; slots run on the engine thread) --
    _load_requested = Signal(object)
    _generate_requested = Signal(object)
    _prewarm_requested = Signal(object)
    _kv_budget_requested = Signal(object)
    _unload_requested = Signal()

    def __init__(self, engine_factory=None):
        super().__init__()
        self._engine_factory = engine_factory or default_engine_factory
        self._engine = None
        self._engine_key: tuple | None = None   # (kind, options) the engine was made with
        self._n_ctx: int | None = None        # the loaded model's context, for fit_context
        self._applied: list | None = None
        self._cancel_lock = threading.Lock()
        self._cancel_all_before = 0           # requests with id <= this are cancelled
        self._current: JobContext | None = None
        self._next_id = 0
        self._pending = 0
        self._generations_waiting = 0         # asked for, not started yet (a pre-warm yields to them)
        self._next_prewarm = 0
        self._prewarm_cancel_before = 0       # pre-warms with id <= this are dropped or stopped
        self._prewarm_ctx: JobContext | None = None
        self.thread = QThread()
        self.thread.setObjectName("EngineHost")
        self.moveToThread(self.thread)
        self._load_requested.connect(self._do_load)
        self._generate_requested.connect(self._do_generate)
        self._prewarm_requested.connect(self._do_prewarm)
        self._kv_budget_requested.connect(self._do_set_kv_budget)
        self._unload_requested.connect(self._do_unload)
        self.thread.start()

    # ---------------------------------------------------------------- GUI-thread API
    def load(self, request: LoadRequest) -> None:
        self.cancel()                          # a new model makes queued answers pointless
        self._load_requested.emit(request)

    def generate(self, messages, params: dict, adapters: list[ActiveAdapter], tag=None,
                 request_id: int | None = None, fit_context: bool = False) -> int:
        """Queue a generation; `request_id` is one from reserve_id() for a request sent later than asked.
        With `fit_context`, a chat that outgrew the context is given without its oldest turns
        (engines.context_window; the stats say how many messages were left out)."""
        if request_id is None:
            request_id = self.reserve_id()
        with self._cancel_lock:
            self._generations_waiting += 1    # a running pre-warm stops at its next chunk
        self._generate_requested.emit(GenerateRequest(request_id, list(messages), dict(params), list(adapters), tag,
                                                      fit_context))
        return request_id

    def reserve_id(self) -> int:
        """A request id for a generation the GUI holds back for a moment (cancel() covers it already)."""
        self._next_id += 1
        return self._next_id

    def prewarm(self, messages, adapters: list, min_reuse: float = 0.0) -> int:
        """Read the chat `messages` under `adapters` into the engine's KV cache in the background (no-op
        for engines without KV snapshots), as a `fit_context` generation will be given them. Progress and
        the end come as prewarm_progressed/_finished."""
        self._next_prewarm += 1
        self._prewarm_requested.emit(PrewarmRequest(self._next_prewarm, list(messages), list(adapters),
                                                    float(min_reuse)))
        return self._next_prewarm

    def cancel_prewarm(self) -> None:
        """Stop the running pre-warm at its next chunk (keeping what it read) and drop queued ones."""
        with self._cancel_lock:
            self._prewarm_cancel_before = self._next_prewarm
            if self._prewarm_ctx is not None:
                self._prewarm_ctx.cancel()

    def set_kv_budget(self, budget: int | None) -> None:
        """Bytes of KV snapshots the engine keeps (None: automatic, 0: none), from now on."""
        self._kv_budget_requested.emit(budget)

    def cancel(self) -> None:
        """Stop the running generation (or load) and drop every generation queued so far (pre-warms too)."""
        with self._cancel_lock:
            self._cancel_all_before = self._next_id
            if self._current is not None:
                self._current.cancel()
        self.cancel_prewarm()

    def unload(self) -> None:
        self.cancel()
        self._unload_requested.emit()

    def shutdown(self, wait_ms: int = 10000) -> None:
        """Cancel, close the engine on its own thread, stop the thread (app exit)."""
        self.cancel()
        self._unload_requested.emit()
        self.thread.quit()
        if self.thread.wait(wait_ms):
            # The thread has stopped: a close request it did not get to is safe to run here.
            self._close_engine()
        else:
            log.warning("the engine thread did not stop within %d ms", wait_ms)

    # ---------------------------------------------------------------- engine thread
    def _new_ctx(self, on_progress=None) -> JobContext:
        ctx = JobContext(on_progress=on_progress)
        with self._cancel_lock:
            self._current = ctx
        return ctx

    def _set_busy(self, busy: bool) -> None:
        self.busy_changed.emit(busy)

    @Slot(object)
    def _do_load(self, req: LoadRequest) -> None:
        self._set_busy(True)
        ctx = self._new_ctx(lambda d, t, m: self.load_progressed.emit(float(d), float(t), m))
        reused = False
        try:
            # The same kind of engine with the same options loads the new model itself: it checks the file
            # before closing the model it has, so a refused file leaves that model loaded and answering.
            reused = self._engine is not None and self._engine_key == (req.engine_kind, req.options)
            if not reused:
                self._close_engine()
                self._engine = self._engine_factory(req.engine_kind, req.options)
                self._engine_key = (req.engine_kind, req.options)
            engine = self._engine
            info = engine.load(req.path, ctx) if _takes_ctx(engine.load) else engine.load(req.path)
            self._applied = []
            loaded = describe_loaded(engine, req, info)
            self._n_ctx = loaded.n_ctx
            self.model_loaded.emit(loaded)
        except BaseException as exc:  # a failed load is reported, the host lives on
            kept = reused and bool(getattr(self._engine, "loaded", False))
            if not kept:
                self._close_engine()
            self.model_load_failed.emit(_as_exception(exc), kept)
        finally:
            with self._cancel_lock:
                self._current = None
            self._set_busy(False)

    @Slot(object)
    def _do_generate(self, req: GenerateRequest) -> None:
        with self._cancel_lock:
            self._generations_waiting = max(0, self._generations_waiting - 1)
            dropped = req.request_id <= self._cancel_all_before
        if dropped:
            self.generation_finished.emit(GenerationStats(req.request_id, 0, 0.0, None, True, "cancelled",
                                                          tag=req.tag))
            return
        if self._engine is None:
            self.generation_failed.emit(req.request_id, RuntimeError("No model is loaded. Load a model first."))
            return
        self._set_busy(True)
        ctx = self._new_ctx(lambda d, t, _m: self.prompt_progressed.emit(req.request_id, float(d), float(t)))
        try:
            if req.adapters != self._applied:
                try:
                    self._engine.set_adapters(list(req.adapters))
                except BaseException as exc:  # engine keeps its previous mix
                    self.adapters_failed.emit(req.request_id, _as_exception(exc))
                    self.generation_failed.emit(req.request_id, _as_exception(exc))
                    return
                self._applied = list(req.adapters)
                self.adapters_applied.emit(list(req.adapters))
            self._stream(req, ctx)
        finally:
            with self._cancel_lock:
                self._current = None
            self._set_busy(False)

    @Slot(object)
    def _do_prewarm(self, req: PrewarmRequest) -> None:
        engine = self._engine
        with self._cancel_lock:
            skip = (req.job_id <= self._prewarm_cancel_before or self._generations_waiting > 0
                    or engine is None or not callable(getattr(engine, "prewarm", None)))
            if not skip:
                ctx = self._prewarm_ctx = _PrewarmContext(
                    self, lambda d, t, _m: self.prewarm_progressed.emit(req.job_id, float(d), float(t)))
        if skip:
            self.prewarm_finished.emit(req.job_id, None)
            return
        result = None
        try:
            if req.adapters != self._applied:
                engine.set_adapters(list(req.adapters))
                self._applied = list(req.adapters)
            from adapters_backend.engines.base import ChatMessage  # after start-up
            messages, _left_out = self._fit([ChatMessage(role=r, content=c) for r, c in req.messages])
            result = (engine.prewarm(messages, ctx, min_reuse=req.min_reuse) if req.min_reuse
                      else engine.prewarm(messages, ctx))
        except Exception as exc:  # a pre-warm only saves time; the generation reports errors
            log.warning("pre-warm skipped: %s", exc)
        finally:
            with self._cancel_lock:
                self._prewarm_ctx = None
        self._emit_kv_stats()                  # first: whoever hears "finished" sees what the store holds
        self.prewarm_finished.emit(req.job_id, result)

    @Slot(object)
    def _do_set_kv_budget(self, budget) -> None:
        if self._engine is not None and callable(getattr(self._engine, "set_kv_budget", None)):
            self._engine.set_kv_budget(budget)
            self._emit_kv_stats()

    def _emit_kv_stats(self) -> None:
        stats = getattr(self._engine, "kv_stats", None) if self._engine is not None else None
        got = stats() if callable(stats) else None
        self.kv_stats_changed.emit(got.as_dict() if got is not None else None)

    def _fit(self, messages: list, continuing: bool = False) -> tuple[list, int]:
        """The part of a chat the model is given (its oldest turns left out once it outgrows the context),
        and how many messages were left out. Engines that cannot count tokens get it whole.
        `continuing`: the last message is an answer to go on with (a generation, not a pre-warm)."""
        from adapters_backend.engines.context_window import can_fit, fit_engine_window  # after start-up
        if not self._n_ctx or not can_fit(self._engine):
            return messages, 0
        window = fit_engine_window(self._engine, messages, self._n_ctx, continuing)
        return window.messages, window.left_out

    def _stream(self, req: GenerateRequest, ctx: JobContext) -> None:
        from adapters_backend.engines.base import ChatMessage, SamplingParams  # after start-up
        messages = [ChatMessage(role=r, content=c) for r, c in req.messages]
        params = SamplingParams(**req.params)
        left_out = 0
        tokens, first, last = 0, None, None
        finish, prompt_tokens, engine_tps, cached = None, None, None, None
        cancelled = False
        # Pieces are sent in batches at most every BATCH_S (the first at once), so a fast engine costs
        # the GUI thread a few dozen slot calls a second instead of one per token.
        pending: list[str] = []
        pending_n = 0
        last_emit = 0.0

        def flush() -> None:
            nonlocal pending_n, last_emit
            if pending_n:
                self.token_streamed.emit(req.request_id, "".join(pending), pending_n)
                pending.clear()
                pending_n = 0
                last_emit = time.perf_counter()

        try:
            if req.fit_context:
                messages, left_out = self._fit(messages, continuing=bool(messages) and messages[-1].role == "assistant")
            for chunk in self._engine.generate(messages, params, ctx):
                now = time.perf_counter()
                n = getattr(chunk, "n_tokens", None)
                n = 1 if n is None else int(n)
                tokens += n
                text = getattr(chunk, "text", "")
                if text or n:
                    pending.append(text)
                    pending_n += n
                    if now - last_emit >= BATCH_S:
                        flush()
                first = first or now
                last = now
                finish = getattr(chunk, "finish_reason", None) or finish
                prompt_tokens = getattr(chunk, "prompt_tokens", None) or prompt_tokens
                cached = getattr(chunk, "prompt_cached", None) if cached is None else cached
                engine_tps = getattr(chunk, "tokens_per_second", None) or engine_tps
                if ctx.cancelled():
                    cancelled = True
                    break
        except JobCancelled:
            cancelled = True
        except BaseException as exc:  # reported, not fatal
            flush()
            self._emit_kv_stats()
            self.generation_failed.emit(req.request_id, _as_exception(exc))
            return
        flush()
        self._emit_kv_stats()                  # before "finished": the GUI reacts to that with the stats
        cancelled = cancelled or ctx.cancelled()
        seconds = (last - first) if (first and last) else 0.0
        self.generation_finished.emit(GenerationStats(
            req.request_id, tokens, seconds, prompt_tokens, cancelled,
            "cancelled" if cancelled else finish, engine_tps, req.tag, cached, left_out))

    @Slot()
    def _do_unload(self) -> None:
        self._close_engine()

    def _close_engine(self) -> None:
        if self._engine is not None:
            try:
                self._engine.close()
            except Exception:  # closing must not fail the next load
                log.exception("closing the engine failed")
            self._engine = None
            self._applied = None


class _PrewarmContext(JobContext):
    """A pre-warm's context: cancelled by cancel_prewarm(), and whenever a generation is waiting."""

    def __init__(self, host: EngineHost, on_progress):
        super().__init__(on_progress)
        self._host = host

    def cancelled(self) -> bool:
        return super().cancelled() or self._host._generations_waiting > 0


def _takes_ctx(fn) -> bool:
    import inspect
    try:
        return len(inspect.signature(fn).parameters) >= 2
    except (TypeError, ValueError):
        return True


def _as_exception(exc: BaseException) -> Exception:
    return exc if isinstance(exc, Exception) else RuntimeError(f"{type(exc).__name__}: {exc}")


def describe_loaded(engine, req: LoadRequest, info) -> LoadedModel:
    return LoadedModel(req.path, req.engine_kind, req.label or req.path, getattr(engine, "capabilities", None),
                       info if isinstance(info, dict) else {})


# The settings hold one set of engine options; each engine takes only its own (TorchEngine has no
# n_gpu_layers, LlamaCppEngine no device/dtype), so unknown keys are dropped rather than failing the load.
ENGINE_OPTION_KEYS = {
    "llama.cpp": ("n_ctx", "n_threads", "n_threads_batch", "n_gpu_layers", "n_batch", "use_mmap", "fuse_mixes",
                  "logits_all", "kv_snapshot_budget"),
    "torch": ("n_ctx", "n_threads", "device", "dtype", "quantize", "kv_snapshot_budget"),
    **{kind: ("api_key",) for kind in REMOTE_ENGINES},
}


def engine_options(kind: str, options: dict) -> dict:
    keys = ENGINE_OPTION_KEYS.get(kind)
    return dict(options) if keys is None else {k: v for k, v in options.items() if k in keys}


def torch_available() -> bool:
    """Whether the PyTorch engine's packages are installed (looked up, not imported: start-up stays fast)."""
    import importlib.util
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))
    except (ImportError, ValueError):
        return False


TORCH_HINT = "Install the PyTorch extra: pip install 'loradeck[torch]'"


def default_engine_factory(kind: str, options: dict):
    """Create an engine by kind; imports the engine module only now (never at app start)."""
    from adapters_backend.errors import EngineUnavailable
    try:
        if kind == "llama.cpp":
            from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
            return LlamaCppEngine(**engine_options(kind, options))
        if kind == "torch":
            from adapters_backend.engines.torch_engine import TorchEngine
            return TorchEngine(**engine_options(kind, options))
        if kind in REMOTE_ENGINES:     # a serving system elsewhere; load() takes its URL
            from adapters_backend.engines import create_engine
            return create_engine(kind, **engine_options(kind, options))
    except ImportError as exc:
        raise EngineUnavailable(f"The {kind} engine is not available in this installation ({exc}). "
                                + (TORCH_HINT + "." if kind == "torch" else "Reinstall LoRA Deck.")) from exc
    raise EngineUnavailable(f"Unknown engine '{kind}'.")
