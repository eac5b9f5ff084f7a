"""Which GGUF file llama.cpp loads for an adapter the user picked.

- A llama.cpp LoRA GGUF is used as it is, after the compatibility check every other part of LoRA Deck
  uses (architecture, tensor names and shapes), which gives a clear reason instead of llama.cpp's
  bare refusal, and once its values are known to be numbers — when its tensors are of the types
  llama.cpp's LoRA path computes with; one with other types is rewritten by the converter (or
  refused by it, naming the tensor and its type).
- Any other format (PEFT, Kohya, Ludwig, …) goes through the convert feature, which caches its output.
- Per-layer strengths become a derived file with the layer factors folded into B, cached on disk by
  the source file's identity and the ranges (llama.cpp has one scale per adapter).
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from ..core.base_model import BaseModelInfo
from ..core.compat import require_compatible
from ..disk_cache import mark_used, trim_cache
from ..errors import AdapterFormatError, BackendError, EngineError, IncompatibleAdapterError
from ..file_identity import file_identity
from ..gguf.header import GGUFError, is_gguf, read_header
from ..gguf.tensors import first_nonfinite
from ..jobs import JobContext
from ..passed_checks import PassedChecks, identity
from ..paths import cache_dir
from ..value_range import ValuesDoNotFit
from .base import LayerScales, layer_factor
from .fold import FoldPart, write_folded

log = logging.getLogger(__name__)

AS_IS_TYPES = frozenset({0, 1, 8, 30})          # ggml F32, F16, Q8_0, BF16




def resolve_adapter_gguf(path: str | Path, base: BaseModelInfo, ctx: JobContext | None = None,
                         label: str | None = None) -> tuple[Path, list[str]]:
    """The llama.cpp LoRA GGUF for `path` (itself, or its cached conversion), checked against `base`,
    and the converter's warnings/notes for the user."""
    p = Path(path).expanduser()
    if not p.exists():
        raise AdapterFormatError(p, "file or folder not found")
    if p.is_file() and is_gguf(p):
        require_compatible(p, base, "llama.cpp", label=label)
        if runs_as_is(p):
            _require_numbers(p)
            return p, []
        # Other tensor types go through the converter, which rewrites what gguf-py can decode and
        # refuses the rest by name: llama.cpp takes an I32 or F64 LoRA tensor and crashes the whole
        # process (SIGSEGV) in the first answer's matrix product.
    elif p.is_file() and p.suffix.lower() == ".gguf":
        raise AdapterFormatError(p, "not a GGUF file (no GGUF magic at the start); the file is damaged or "
                                    "not what its name says")
    try:
        return _convert(p, base, ctx)
    except IncompatibleAdapterError as exc:
        if not label or exc.report is None:
            raise
        # The converter names the adapter by its path; the user knows it by its name.
        where = base.path.name if base.path is not None else (base.name or "this model")
        raise IncompatibleAdapterError(f"{label} does not fit {where}: {exc.report.summary}", exc.report) from None


def runs_as_is(path: Path) -> bool:
    """Whether every tensor of a llama.cpp LoRA GGUF has a type its LoRA path computes with: the float
    types and Q8_0, what llama.cpp's own converter and LoRA Deck's write."""
    try:
        return all(t.ggml_type in AS_IS_TYPES for t in read_header(path).tensors.values())
    except GGUFError:
        return False            # the converter's reader names what is wrong


ALL_NUMBERS = PassedChecks("adapters-all-numbers.json")     # as-is adapter files whose values were numbers


def _require_numbers(path: Path) -> None:
    """Refuse a LoRA GGUF that holds a NaN or an infinity (a training run that overflowed leaves them):
    llama.cpp would run it and answer with nonsense. The converter checks every value it reads; a file
    used as it is gets the same check here, once per file (134 MB of f16 took 0.13 s)."""
    key = identity([path])
    if key in ALL_NUMBERS:
        return
    try:
        bad = first_nonfinite(path)
    except GGUFError as exc:
        raise AdapterFormatError(path, str(exc)) from None
    if bad is not None:
        raise AdapterFormatError(path, f"tensor '{bad}' holds NaN or infinite values: the adapter is damaged "
                                       "(a training run that overflowed leaves such values) and cannot be used")
    ALL_NUMBERS.add(key)


def _convert(path: Path, base: BaseModelInfo, ctx: JobContext | None) -> tuple[Path, list[str]]:
    """Any other format → llama.cpp GGUF through the convert feature's cache (it checks compatibility
    first and raises IncompatibleAdapterError with the same text `loradeck check` prints)."""
    from ..convert.cache import convert_cached
    try:
        result = convert_cached(path, base, ctx=ctx)
    except BackendError:
        raise
    except Exception as exc:  # a converter bug must not look like a crash of the engine
        raise AdapterFormatError(path, f"conversion to llama.cpp GGUF failed ({type(exc).__name__}: {exc})") from exc
    out = Path(result.path)
    if not out.is_file():
        raise EngineError(f"the converter did not produce a GGUF file for {path}")
    return out, [*getattr(result, "warnings", []), *getattr(result, "notes", [])]


def derived_dir() -> Path:
    d = cache_dir() / "lora-derived"
    d.mkdir(parents=True, exist_ok=True)
    return d


def per_layer_file(src: Path, ranges: LayerScales) -> Path:
    """`src` with each layer's B multiplied by its factor (alpha folded too); cached."""
    key = hashlib.sha256(f"{file_identity(src)}|{ranges!r}|v1".encode()).hexdigest()[:24]
    out = derived_dir() / f"{Path(src).stem}.layers-{key}.gguf"
    if out.exists():
        mark_used(out)
        return out
    parts = [FoldPart(Path(src), 1.0, lambda layer: layer_factor(ranges, layer))]
    name = f"{Path(src).stem} (per-layer strengths)"
    try:
        write_folded(out, parts, name=name)
    except ValuesDoNotFit as exc:       # a 16-bit adapter's B times its layer factor: past float16
        log.info("%s; the per-layer file of %s is written in f32", exc, src)
        write_folded(out, parts, name=name, f32=True)
    trim_cache(derived_dir())
    return out
