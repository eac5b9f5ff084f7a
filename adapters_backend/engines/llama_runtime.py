"""Thin, careful wrappers over llama-cpp-python's low-level calls the engine needs.

- `open_model`: `Llama(...)` with load progress and cancel (llama.cpp's progress callback; returning
  False aborts the load) and llama.cpp's own reason in the error when loading fails.
- `AdapterHandles`: runtime LoRA adapters on one model/context — init (NULL-checked: a NULL from
  ctypes is a *falsy* pointer object, not None), set the active weighted set, free (only after the
  adapter left the context's set; a freed adapter still listed there would dangle).
- `token_bytes`: a token's bytes, without the trailing NULs of llama-cpp-python's helper.
"""
from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from ..errors import AdapterFormatError, BaseModelError, IncompatibleAdapterError, JobCancelled
from ..jobs import JobContext
from . import llama_log

_PATCH_LOCK = threading.Lock()         # the progress hook patches a module function for one load at a time


def extra_buffers_safe() -> bool:
    """Whether llama.cpp may put weights in its "extra" CPU buffers (AMX / repacked layouts).

    On CPUs with AMX, llama-cpp-python 0.3.36 crashes the whole process (SIGSEGV in decode) on a
    Q8_0 model in those buffers (seen on a Xeon with AMX_INT8; plain CPU buffers run it fine), so they
    are turned off there. LORADECK_LLAMA_EXTRA_BUFFERS=1 or 0 overrides."""
    import os

    forced = os.environ.get("LORADECK_LLAMA_EXTRA_BUFFERS")
    if forced in ("0", "1"):
        return forced == "1"
    import llama_cpp

    info = llama_cpp.llama_print_system_info()
    info = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    return "AMX_INT8 = 1" not in info


def default_model_params(extra=None):
    """llama.cpp's default model parameters with LoRA Deck's safety settings (and `extra(params)`)."""
    import llama_cpp.llama_cpp as lib

    params = _ORIGINAL_DEFAULTS[0]() if _ORIGINAL_DEFAULTS else lib.llama_model_default_params()
    if not extra_buffers_safe():
        params.use_extra_bufts = False
    if extra is not None:
        extra(params)
    return params


_ORIGINAL_DEFAULTS: list = []


def patch_model_defaults(extra=None):
    """Make llama-cpp-python's `Llama(...)` build its model parameters with `default_model_params`
    (it has no argument for them). Returns an undo function; hold _PATCH_LOCK around load + undo."""
    import llama_cpp.llama_cpp as lib

    if not _ORIGINAL_DEFAULTS:
        _ORIGINAL_DEFAULTS.append(lib.llama_model_default_params)
    lib.llama_model_default_params = lambda: default_model_params(extra)

    def undo():
        lib.llama_model_default_params = _ORIGINAL_DEFAULTS[0]
    return undo


def open_model(path: Path, ctx: JobContext | None, **llama_kwargs):
    """Load a GGUF model with llama-cpp-python; BaseModelError with llama.cpp's reason on failure."""
    import llama_cpp
    import llama_cpp.llama_cpp as lib

    llama_log.install()
    ctx = ctx or JobContext()

    def on_progress(progress: float, _data) -> bool:
        try:
            ctx.report(float(progress), 1.0, "loading model")
            return not ctx.cancelled()
        except Exception:  # never raise into C
            return True

    callback = lib.llama_progress_callback(on_progress)

    def with_progress(params):
        params.progress_callback = callback

    ctx.check()
    with llama_log.capture() as cap, _PATCH_LOCK:
        # llama-cpp-python has no progress argument; it builds its params from this function.
        undo = patch_model_defaults(with_progress)
        undo_templates = skip_template_compiling()
        try:
            llm = llama_cpp.Llama(model_path=str(path), verbose=False, **llama_kwargs)
        except (ValueError, RuntimeError, OSError) as exc:
            if ctx.cancelled():
                raise JobCancelled("model loading cancelled") from exc
            reason = cap.reason()
            error = OutOfMemoryLoadError if _out_of_memory(reason) else BaseModelError
            raise error(path, _load_failure(reason, exc)) from exc
        finally:
            undo_templates()
            undo()
    return llm


class _UncompiledTemplate:
    """Stands in for llama-cpp-python's Jinja2ChatFormatter inside `Llama(...)`, which compiles every chat
    template of the GGUF in this process: Jinja folds constants while compiling, so a template such as
    `{{ 'x' * 10**10 }}` filled memory and `{{ 10 ** 10**7 }}` took 12 s and then failed the whole load,
    before LoRA Deck's own rendering (in its helper process, chat/template_sandbox.py) had a say. Those
    handlers are for llama-cpp-python's create_chat_completion, which LoRA Deck never calls."""

    def __init__(self, *args, **kwargs):
        pass

    def to_chat_handler(self):
        def refuse(*_args, **_kwargs):
            raise RuntimeError("LoRA Deck renders a model's chat template in its helper process, not here")
        return refuse


class _FormatsWithoutCompiling:
    """llama_cpp.llama_chat_format as `Llama(...)` sees it during a load, without the compiling formatter."""

    def __init__(self, module):
        self._module = module
        self.Jinja2ChatFormatter = _UncompiledTemplate

    def __getattr__(self, name):
        return getattr(self._module, name)


def skip_template_compiling():
    """Make `Llama(...)` not compile the GGUF's chat templates; returns the undo (hold _PATCH_LOCK).
    Only the name llama_cpp.llama sees is replaced: LoRA Deck's own formatter use is unaffected."""
    import llama_cpp.llama as llama_module

    original = llama_module.llama_chat_format
    llama_module.llama_chat_format = _FormatsWithoutCompiling(original)

    def undo():
        llama_module.llama_chat_format = original
    return undo


class OutOfMemoryLoadError(BaseModelError):
    """Loading failed for want of memory (host or GPU): fewer GPU layers may fit."""


FEWER_LAYERS = " or fewer GPU layers"


def _out_of_memory(reason: str) -> bool:
    low = reason.lower().replace(" ", "")
    return any(word in low for word in ("alloc", "outofmemory", "outofdevicememory")) or (
        "mmap" in low and "failed" in low)


def _load_failure(reason: str, exc: Exception) -> str:
    low = reason.lower()
    if "unknown model architecture" in low:
        arch = reason.split("unknown model architecture:", 1)[-1].strip().split(";")[0].strip(" '")
        return (f"llama.cpp in this LoRA Deck build does not support the model architecture '{arch}' "
                f"({reason})")
    if _out_of_memory(reason):
        return (f"not enough memory to load the model ({reason}); try a smaller quantization, a shorter "
                f"context (--ctx){FEWER_LAYERS}")
    if "not within the file bounds" in low or "failed to read" in low or "corrupt" in low:
        return f"the file is damaged or incomplete ({reason}); download it again"
    if "context" in str(exc).lower() and not reason:
        return f"llama.cpp could not create a context for this model ({exc}); try a shorter context (--ctx)"
    return f"llama.cpp could not load this model: {reason or exc}"


def token_bytes(vocab, token: int) -> bytes:
    """The bytes of one token (special tokens render as nothing)."""
    import llama_cpp

    buf = ctypes.create_string_buffer(64)
    n = llama_cpp.llama_token_to_piece(vocab, int(token), buf, len(buf), 0, False)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, int(token), buf, len(buf), 0, False)
    return buf.raw[:max(n, 0)]


def last_logits(llm, vocab):
    """The logits the last token was sampled from (a view of llama.cpp's buffer, valid until the next
    evaluation), or None when the last evaluation kept none."""
    import llama_cpp
    import numpy as np

    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    if not ptr:
        return None
    return np.ctypeslib.as_array(ptr, shape=(llama_cpp.llama_vocab_n_tokens(vocab),))


def release_free_memory() -> None:
    """Give freed heap memory back to the OS (glibc keeps big freed blocks, so a removed adapter would
    still count in the process's memory use). A no-op elsewhere."""
    global _malloc_trim
    if _malloc_trim is None:
        _malloc_trim = False
        if sys.platform.startswith("linux"):
            try:
                _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
            except (OSError, AttributeError):
                pass
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None
TRIM_AFTER_BYTES = 16 << 20            # returning memory walks the heap: worth it for big adapters only


class AdapterHandles:
    """Runtime LoRA adapters of one llama.cpp model and context."""

    def __init__(self, llm):
        import llama_cpp

        self._lib = llama_cpp
        self._llm = llm
        self.loaded: dict[int, object] = {}        # id -> adapter pointer
        self._sizes: dict[int, int] = {}           # id -> file size (to decide on giving memory back)
        self._next = 0
        self._active: tuple[tuple[int, float], ...] = ()

    def init(self, path: Path, label: str) -> int:
        """Load one adapter file; returns its id. The model's weights are not touched."""
        with llama_log.capture() as cap:
            ptr = self._lib.llama_adapter_lora_init(self._llm.model, str(path).encode("utf-8"))
        if not ptr:                                # NULL comes back as a falsy LP_c_void_p
            reason = cap.reason() or "no reason given"
            if any(k in reason for k in ("mismatch", "does not exist in base model", "incorrect shape")):
                raise IncompatibleAdapterError(f"{label} does not fit this model: {reason}")
            raise AdapterFormatError(path, f"llama.cpp could not load this adapter: {reason}")
        self._next += 1
        self.loaded[self._next] = ptr
        try:
            self._sizes[self._next] = Path(path).stat().st_size
        except OSError:
            pass
        return self._next

    def set_active(self, weighted: Sequence[tuple[int, float]]) -> bool:
        """Make exactly these (id, scale) the context's adapters; returns True if anything changed.
        Scale 0 entries are left out (llama.cpp would drop them anyway)."""
        wanted = tuple((i, float(s)) for i, s in weighted if s != 0.0)
        if wanted == self._active:
            return False
        if not wanted:
            self._lib.llama_set_adapters_lora(self._llm.ctx, None, 0, None)
        else:
            arr = (self._lib.llama_adapter_lora_p_ctypes * len(wanted))(*[self.loaded[i] for i, _ in wanted])
            scales = (ctypes.c_float * len(wanted))(*[s for _, s in wanted])
            self._lib.llama_set_adapters_lora(self._llm.ctx, arr, len(wanted), scales)
        self._active = wanted
        return True

    @property
    def active(self) -> tuple[tuple[int, float], ...]:
        return self._active

    def free(self, handle: int) -> None:
        ptr = self.loaded.pop(handle, None)
        if ptr is None:
            return
        if any(i == handle for i, _ in self._active):
            self.set_active([(i, s) for i, s in self._active if i != handle])
        self._lib.llama_adapter_lora_free(ptr)
        if self._sizes.pop(handle, 0) >= TRIM_AFTER_BYTES:
            release_free_memory()

    def free_all(self) -> None:
        self.set_active([])
        for handle in list(self.loaded):
            self.free(handle)
