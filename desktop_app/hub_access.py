"""The Hub calls the app makes (search, details, downloads), mapped onto the backend's hub package.

Plain functions run inside JobRunner jobs. Search rows and repository details are the backend's
`as_dict()` forms (the details' verdict a `Verdict`); an install returns the `LibraryEntry`.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def upstream_base_of(model_path: str) -> str | None:
    """The Hub id a local model comes from (GGUF `general.base_model.*`), if it says."""
    try:
        from adapters_backend.core.base_model import load_base_model
        ids = load_base_model(model_path).upstream_ids
    except Exception as exc:  # no upstream id just means the user types one
        log.info("no upstream id for %s: %s", model_path, exc)
        return None
    return ids[0] if ids else None


def retry_offline() -> None:
    """The user asked again: find out afresh whether the Hub can be reached (a flag; no network here)."""
    from adapters_backend.hub import reach
    reach.retry()


def is_offline_error(exc) -> bool:
    from adapters_backend.errors import HubOfflineError
    return isinstance(exc, HubOfflineError)


def search(params: dict, page: int, page_size: int, ctx=None) -> list[dict]:
    from adapters_backend import hub
    rows = hub.search(params.get("text"), base=params.get("base"), fmt=params.get("format"),
                      sort=params.get("sort") or "downloads", limit=page_size, offset=page * page_size,
                      kind=params.get("kind") or "adapter")
    return [r.as_dict() for r in rows]


def details(repo_id: str, kind: str, base: dict | None, ctx=None) -> dict:
    """Repository details; for adapters with a loaded model, the verdict against it."""
    from adapters_backend import hub
    from adapters_backend.core.compat import ENGINES, Verdict
    target, engine = None, "llama.cpp"
    if base and kind != "model":
        target = base.get("path") or base.get("id")
        if base.get("engine") in ENGINES:
            engine = base["engine"]
    d = hub.repo_details(repo_id, base=target, engine=engine).as_dict()
    d["compat"] = Verdict.from_json(d.get("compat"))
    if kind == "model":   # the models it offers (a split model's parts as one), smallest first
        from adapters_backend.machine import fits_memory, total_memory
        total = total_memory()
        d["files"] = [{**m, "fits": fits_memory(m["size"] or 0, total)} for m in d["gguf_files"]]
        suggested = hub.suggested_model(d["gguf_files"], total)
        d["suggested"] = suggested["name"] if suggested else None
        d["memory"] = total
    return d


def download_and_install(repo_id: str, revision: str | None, ctx=None):
    """The adapter's new (or already present) `LibraryEntry`."""
    from adapters_backend import hub
    return hub.install_from_hub(repo_id, revision=revision, ctx=ctx)


def download_install_and_check(repo_id: str, revision: str | None, model_path: str | None = None,
                               engine: str | None = None, ctx=None):
    """(LibraryEntry, its Verdict against the loaded model or None): the install says whether it fits."""
    from adapters_backend.model_ref import is_url

    from .library_access import verdict_for
    entry = download_and_install(repo_id, revision, ctx=ctx)
    if not model_path or not engine or is_url(model_path):
        return entry, None
    return entry, verdict_for(entry.path, model_path, engine)


def download_model_file(repo_id: str, parts: list[str], revision: str | None, ctx=None) -> str:
    """Download a model's file, or every part of a split model; the path llama.cpp opens (the first)."""
    from adapters_backend import hub
    return str(hub.download_files(repo_id, list(parts), revision, ctx) / parts[0])


def token_status() -> str:
    """Where the Hub token comes from, without showing it."""
    try:
        from huggingface_hub import get_token
        token = get_token()
    except Exception:
        token = None
    return "A token is set (gated and private repositories work)." if token else \
        "No token: public repositories only. Paste one from huggingface.co/settings/tokens."


def set_token(token: str) -> None:
    from adapters_backend import hub
    hub.set_token(token)


def downloaded_models(ctx=None) -> list[dict]:
    """The models in the Hugging Face cache ({repo_id, kind, size, last_used, models}), most recent first."""
    from adapters_backend import hub
    return [m.as_dict() for m in hub.downloaded_models()]


def remove_downloaded(repo_id: str, in_use: list[str], ctx=None) -> int:
    """Delete a model repository's downloaded files; the bytes freed."""
    from adapters_backend import hub
    return hub.remove_downloaded(repo_id, in_use)
