"""The backend calls the app makes about adapters: library, install, compatibility, demo.

Each function is plain Python, runs inside a JobRunner job (so it may block) and returns plain
dicts the Qt models show. Keeping the mapping here means one file follows the backend's names.
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

ENTRY_FIELDS = ("id", "name", "path", "format", "variant", "rank", "alpha", "base_model", "size", "source",
                "license", "notes", "installed", "sha256")


# ---------------------------------------------------------------------- demo
def demo_model() -> Path | None:
    try:
        from adapters_backend import demo  # noqa: PLC0415
        return demo.demo_model_path()
    except Exception as exc:  # noqa: BLE001 - no demo is not fatal: the user opens a model
        log.warning("demo model unavailable: %s", exc)
        return None


def is_demo_model(path) -> bool:
    try:
        from adapters_backend import demo  # noqa: PLC0415
        return demo.is_demo_model(path)
    except Exception:  # noqa: BLE001
        return False


def demo_note() -> str:
    try:
        from adapters_backend import demo  # noqa: PLC0415
        return demo.DEMO_NOTE
    except Exception:  # noqa: BLE001
        return "This is a tiny demo model."


def demo_prompts() -> list[str]:
    try:
        from adapters_backend import demo  # noqa: PLC0415
        return demo.demo_prompts()
    except Exception:  # noqa: BLE001
        return []


# ---------------------------------------------------------------------- entries
def entry_id(e: dict) -> str:
    return e["id"]


def entry_name(e: dict) -> str:
    return e.get("name") or e["id"]


def entry_path(e: dict) -> str:
    """The file the engine loads for this adapter."""
    return e.get("engine_path") or e["path"]


def _library():
    from adapters_backend.library import Library  # noqa: PLC0415
    return Library()


def _normalize(entry) -> dict:
    get = entry.get if isinstance(entry, dict) else (lambda k, d=None: getattr(entry, k, d))
    d = {k: get(k) for k in ENTRY_FIELDS}
    d["id"] = str(d["id"] or get("name"))
    d["name"] = str(get("label") or d["name"] or d["id"])
    d["path"] = str(d["path"])
    return d


def list_entries(ctx=None) -> list[dict]:
    try:
        library = _library()
    except ImportError:
        return _demo_entries()
    return [_normalize(e) for e in library.list()]


def _demo_entries() -> list[dict]:
    """Until the library backend exists: the demo adapters, read-only."""
    try:
        from adapters_backend import demo  # noqa: PLC0415
        adapters = demo.demo_adapters()
    except Exception:  # noqa: BLE001
        return []
    out = []
    for a in adapters:
        out.append({"id": f"demo-{a.name}", "name": a.name, "path": str(a.path), "format": a.format,
                    "variant": "lora", "source": "demo", "notes": a.description,
                    "engine_path": str(demo.demo_lora_gguf(a.name))})
    return out


def startup_entries(first_run: bool, ctx=None) -> tuple[list[dict], list[str]]:
    """The library at start; on first run the demo adapters are registered in it first.
    Returns (entries, ids of the demo adapters)."""
    try:
        library = _library()
    except ImportError:
        entries = _demo_entries()
        return entries, [e["id"] for e in entries]
    for problem in library.problems:       # a rebuilt index, a stray folder, files gone: nothing was deleted
        log.warning("adapter library: %s", problem)
    demo = _demo_adapters()
    if first_run:
        known = {_normalize(e)["name"] for e in library.list()}
        for a in demo:
            if a.name in known:
                continue
            try:
                library.install(str(a.path), name=a.name)
            except Exception as exc:  # noqa: BLE001 - the app still starts; the adapter is just missing
                log.warning("could not register the demo adapter %s: %s", a.name, exc)
    entries = [_normalize(e) for e in library.list()]
    demo_names = {a.name for a in demo}
    return entries, [e["id"] for e in entries if e["name"] in demo_names]


def _demo_adapters() -> list:
    try:
        from adapters_backend import demo  # noqa: PLC0415
        return demo.demo_adapters()
    except Exception:  # noqa: BLE001
        return []


def install(source: str, name: str | None = None, ctx=None) -> dict:
    library = _library()
    return _normalize(library.install(source, name=name, ctx=ctx))


def remove(adapter_id: str, ctx=None) -> None:
    _library().remove(adapter_id)


def rename(adapter_id: str, new_name: str, ctx=None) -> None:
    _library().rename(adapter_id, new_name)


def set_notes(adapter_id: str, notes: str, ctx=None) -> None:
    _library().set_notes(adapter_id, notes)


def inspect_with_anatomy(path: str, ctx=None):
    """(inspect report as text, Anatomy) for the library's details pane; reads the adapter once."""
    from adapters_backend.report.anatomy import compute_anatomy  # noqa: PLC0415
    from adapters_backend.formats.registry import read_adapter  # noqa: PLC0415
    from adapters_backend.report.inspect import format_report, inspect_adapter  # noqa: PLC0415
    adapter = read_adapter(path)
    if ctx is not None:
        ctx.check()
    report = format_report(inspect_adapter(path, adapter=adapter))
    return report, compute_anatomy(adapter, ctx)


def gguf_kind(path: str, ctx=None) -> str:
    """"adapter" for a LoRA GGUF, "model" for a base model (from `general.type`)."""
    from adapters_backend.errors import AdapterFormatError  # noqa: PLC0415
    try:
        from adapters_backend.gguf.header import read_gguf_header  # noqa: PLC0415 - bounded and fast
        kind = read_gguf_header(path).metadata.get("general.type")
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file, said plainly
        raise AdapterFormatError(path, f"not a readable GGUF file ({type(exc).__name__}: {exc})") from None
    return "adapter" if kind == "adapter" else "model"


# ---------------------------------------------------------------------- compatibility
def check_all(entries: list[dict], model_path: str, engine: str, ctx=None) -> dict[str, dict]:
    """{adapter id: {"ok": True/False/None, "reason": text}} for every entry against the model."""
    if str(model_path).lower().startswith(("http://", "https://")):
        return {}      # a remote server's model is not here to check against; the server refuses what won't fit
    try:
        from adapters_backend.core.compat import check_compatibility  # noqa: PLC0415
    except ImportError:
        return {}
    out = {}
    for i, e in enumerate(entries):
        if ctx is not None:
            ctx.check()
            ctx.report(i, len(entries), e["name"])
        try:
            report = check_compatibility(e["path"], model_path, engine)
        except Exception as exc:  # noqa: BLE001 - one bad adapter must not hide the others' verdicts
            out[e["id"]] = {"ok": False, "reason": str(exc)}
            continue
        out[e["id"]] = verdict_of(report)
    return out


def verdict_of(report) -> dict:
    ok = getattr(report, "compatible", None)
    reason = getattr(report, "summary", None) or getattr(report, "message", None) or ""
    if callable(reason):
        reason = reason()
    return {"ok": ok, "reason": str(reason)}
