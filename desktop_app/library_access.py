"""The backend calls the app makes about adapters: library, install, compatibility, demo.

Each function is plain Python and runs inside a JobRunner job (so it may block); it returns the
backend's own types (`LibraryEntry`, `Verdict`). Backend modules are imported on first use, after
the window is painted.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adapters_backend.core.compat import Verdict
    from adapters_backend.library import LibraryEntry

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- demo
def demo_model() -> Path | None:
    from adapters_backend import demo
    from adapters_backend.errors import BaseModelError
    try:
        return demo.demo_model_path()
    except BaseModelError as exc:      # no demo is not fatal: the user opens a model
        log.warning("demo model unavailable: %s", exc)
        return None


def is_demo_model(path) -> bool:
    from adapters_backend import demo
    return demo.is_demo_model(path)


def demo_note() -> str:
    from adapters_backend import demo
    return demo.DEMO_NOTE


def demo_prompts() -> list[str]:
    from adapters_backend import demo
    from adapters_backend.errors import BaseModelError
    try:
        return demo.demo_prompts()
    except BaseModelError:
        return []


# ---------------------------------------------------------------------- entries
def _library():
    from adapters_backend.library import Library
    return Library()


def _shown(entries: list[LibraryEntry]) -> list[LibraryEntry]:
    """Demo adapters say "built-in demo" as their source, also in libraries that recorded the path of
    the demo files (before the demo had its own provenance)."""
    from adapters_backend.demo import DEMO_SOURCE, is_demo_source
    return [dataclasses.replace(e, source=DEMO_SOURCE) if e.source != DEMO_SOURCE and is_demo_source(e.source)
            else e for e in entries]


def index_identity():
    """What changes when the library changes, from this app or another process (see Library)."""
    from adapters_backend.library import index_identity as identity
    return identity()


def list_entries(ctx=None) -> list[LibraryEntry]:
    return _shown(_library().list())


def startup_entries(first_run: bool, ctx=None) -> tuple[list[LibraryEntry], list[str]]:
    """The library at start; on first run the demo adapters are registered in it first.
    Returns (entries, ids of the demo adapters)."""
    from adapters_backend import demo
    from adapters_backend.errors import BaseModelError
    library = _library()
    try:
        adapters = demo.demo_adapters()
    except BaseModelError as exc:
        log.warning("demo adapters unavailable: %s", exc)
        adapters = []
    for problem in library.problems:       # a rebuilt index, a stray folder, files gone: nothing was deleted
        log.warning("adapter library: %s", problem)
    if first_run:
        known = {e.name for e in library.list()}
        for a in adapters:
            if a.name in known:
                continue
            try:
                library.install(str(a.path), name=a.name, provenance=demo.DEMO_SOURCE)
            except Exception as exc:  # the app still starts; the adapter is just missing
                log.warning("could not register the demo adapter %s: %s", a.name, exc)
    entries = _shown(library.list())
    demo_names = {a.name for a in adapters}
    return entries, [e.id for e in entries if e.name in demo_names]


def install(source: str, name: str | None = None, ctx=None) -> LibraryEntry:
    return _library().install(source, name=name, ctx=ctx)


def remove(adapter_id: str, ctx=None) -> None:
    _library().remove(adapter_id)


def rename(adapter_id: str, new_name: str, ctx=None) -> None:
    _library().rename(adapter_id, new_name)


def set_notes(adapter_id: str, notes: str, ctx=None) -> None:
    _library().set_notes(adapter_id, notes)


def inspect_with_anatomy(path: str, ctx=None):
    """(inspect report as text, Anatomy) for the library's details pane; reads the adapter once."""
    from adapters_backend.formats.registry import read_adapter
    from adapters_backend.report.anatomy import compute_anatomy
    from adapters_backend.report.inspect import format_report, inspect_adapter
    adapter = read_adapter(path)
    if ctx is not None:
        ctx.check()
    report = format_report(inspect_adapter(path, adapter=adapter))
    return report, compute_anatomy(adapter, ctx)


def gguf_kind(path: str, ctx=None) -> str:
    """"adapter" for a LoRA GGUF, "model" for a base model (from `general.type`)."""
    from adapters_backend.errors import AdapterFormatError
    try:
        from adapters_backend.gguf.header import read_header  # bounded and fast
        kind = read_header(path).general_type
    except Exception as exc:  # any parse failure is a bad file, said plainly
        raise AdapterFormatError(path, f"not a readable GGUF file ({type(exc).__name__}: {exc})") from None
    return "adapter" if kind == "adapter" else "model"


# ---------------------------------------------------------------------- compatibility
def check_all(entries: list[LibraryEntry], model_path: str, engine: str, first: int = 0,
              ctx=None) -> dict[str, Verdict]:
    """{adapter id: Verdict} for every entry against the model. When `first` > 0, the verdicts of the
    first `first` entries (the active mix's) are also handed over early, as a partial result: a
    generation waiting on them need not wait for the whole library."""
    from adapters_backend.model_ref import is_url
    if is_url(model_path):
        return {}      # a remote server's model is not here to check against; the server refuses what won't fit
    out, model_identity = {}, _identity(model_path)       # once, not per adapter (a model folder is walked)
    for i, e in enumerate(entries):
        if ctx is not None:
            ctx.check()
            ctx.report(i, len(entries), e.name)
        out[e.id] = _verdict(e.path, model_path, engine, model_identity)
        if i + 1 == first and ctx is not None and hasattr(ctx, "partial"):
            ctx.partial(dict(out))
    return out


# Verdicts already reached in this run, by the adapter's and the model's file identities (a changed
# file is checked again): the whole library is checked at every model load, and going back to a model
# checked before then costs a few stats per adapter (1,000 adapters: seconds of Python in a worker,
# during which every call from Qt into Python waits its turn).
_VERDICTS: OrderedDict[tuple, Verdict] = OrderedDict()
_VERDICTS_LOCK = threading.Lock()
VERDICTS_KEPT = 20_000


def verdict_for(adapter_path, model_path: str, engine: str) -> Verdict:
    """One adapter's verdict against the model, by the compatibility check every part of LoRA Deck uses."""
    return _verdict(adapter_path, model_path, engine, _identity(model_path))


def _identity(path) -> str | None:
    from adapters_backend.file_identity import source_identity
    try:
        return source_identity(path)
    except OSError:                     # gone, or a Hub model id: checked, not remembered
        return None


def _verdict(adapter_path, model_path: str, engine: str, model_identity: str | None) -> Verdict:
    """`model_identity`: the model's source_identity, found once for a whole library (None: not remembered)."""
    from adapters_backend.core.compat import Verdict, check_compatibility
    adapter_identity = _identity(adapter_path) if model_identity is not None else None
    key = (adapter_identity, model_identity, engine) if adapter_identity is not None else None
    with _VERDICTS_LOCK:
        known = _VERDICTS.get(key) if key is not None else None
        if known is not None:
            _VERDICTS.move_to_end(key)
            return known
    try:
        verdict = Verdict.of(check_compatibility(adapter_path, model_path, engine))
    except Exception as exc:  # one bad adapter must not hide the others' verdicts
        return Verdict.unreadable(exc)
    if key is not None:
        with _VERDICTS_LOCK:
            _VERDICTS[key] = verdict
            while len(_VERDICTS) > VERDICTS_KEPT:
                _VERDICTS.popitem(last=False)
    return verdict


def install_and_check(source: str, name: str | None = None, model_path: str | None = None,
                      engine: str | None = None, ctx=None) -> tuple[LibraryEntry, Verdict | None]:
    """Install into the library, then check the new adapter against the loaded model (None: no model,
    or a remote one that cannot be checked here)."""
    from adapters_backend.model_ref import is_url
    entry = install(source, name, ctx=ctx)
    if not model_path or not engine or is_url(model_path):
        return entry, None
    return entry, verdict_for(entry.path, model_path, engine)
