"""Download an adapter repo's needed files and install it into the library (referencing the HF cache)."""
from __future__ import annotations

from pathlib import PurePosixPath

from ..atomic import read_json
from ..errors import HubError, HubOfflineError
from ..jobs import JobContext
from .client import offline_hint
from .details import blob_etags, fetch_declared_base_config, model_info
from .download import _from_cache, cached_commit, download_files
from .search import base_of

_WEIGHTS = (".safetensors", ".gguf")
_PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_SKIP = ("tokenizer", "special_tokens_map", "training_args", "optimizer", "scheduler", "trainer_state", "rng_state")


def adapter_files(names: list[str]) -> list[str]:
    """The files an adapter needs: top-level configs and safetensors/GGUF weights; never pickles,
    tokenizers, training state or subfolders (other checkpoints)."""
    top = [n for n in names if "/" not in n]
    keep = [n for n in top if n.lower().endswith(_WEIGHTS + (".json", ".yaml", ".yml"))
            and not n.lower().startswith(_SKIP)]
    if not any(n.lower().endswith(_WEIGHTS) for n in keep):
        if any(n.lower().endswith(_PICKLES) for n in top):
            raise HubError(None, "the repository has only pickle weights (.bin/.pt); LoRA Deck never loads "
                                 "pickles, which can run code. Look for a safetensors version")
        raise HubError(None, "no adapter weights (.safetensors or .gguf) at the top of the repository")
    return keep + [n for n in top if n == "README.md"]


def download_adapter(repo_id: str, revision: str | None = None, ctx: JobContext | None = None):
    """(path to install, commit, facts from the Hub). Offline: from the cache, if it is there."""
    facts: dict = {}
    try:
        info = model_info(repo_id, revision)
    except HubOfflineError as exc:
        commit = cached_commit(repo_id, revision)
        if commit is None:
            raise HubOfflineError(repo_id, f"{exc.problem} (this repository was never downloaded)") from None
        snap = _snapshot_offline(repo_id, commit)
        return _target(snap, [p.name for p in snap.iterdir()]), commit, facts
    try:
        files = adapter_files([s.rfilename for s in info.siblings or []])
    except HubError as exc:
        raise HubError(repo_id, exc.problem) from None
    sizes = {s.rfilename: (s.lfs.size if s.lfs else s.size) or 0 for s in info.siblings or []}
    snap = download_files(repo_id, files, revision, ctx, sizes=sizes, commit=info.sha, etags=blob_etags(info))
    card = info.card_data
    facts["license"] = getattr(card, "license", None) if card else None
    # The declared base's family decides compatibility too: have its config.json at hand for the check.
    fetch_declared_base_config(_declared_base(snap, base_of(list(info.tags or []),
                                                            getattr(card, "base_model", None) if card else None)))
    return _target(snap, files), info.sha, facts


def _declared_base(snapshot, from_listing: str | None) -> str | None:
    """The base the adapter's own config names (what the check compares), else the Hub's tag."""
    cfg = read_json(snapshot / "adapter_config.json") if (snapshot / "adapter_config.json").is_file() else None
    named = cfg.get("base_model_name_or_path") if isinstance(cfg, dict) else None
    return named if isinstance(named, str) and named else from_listing


def _snapshot_offline(repo_id: str, commit: str):
    from .download import storage_folder
    snap = storage_folder(repo_id) / "snapshots" / commit
    if not snap.is_dir():
        raise HubOfflineError(repo_id, f"{offline_hint()} (this repository was never downloaded)")
    return _from_cache(repo_id, [p.name for p in snap.iterdir()], commit)


def _target(snapshot, files: list[str]):
    """The snapshot folder for PEFT/Ludwig layouts; the weights file itself for a lone GGUF/Kohya file."""
    names = {PurePosixPath(f).name for f in files}
    if "adapter_config.json" in names or any(n.endswith(".json") and n != "config.json" for n in names):
        return snapshot
    weights = sorted(n for n in names if n.lower().endswith(_WEIGHTS))
    return snapshot / weights[0] if len(weights) == 1 else snapshot


def install_from_hub(repo_id: str, revision: str | None = None, name: str | None = None,
                     ctx: JobContext | None = None, library=None):
    """Download (or reuse the cache) and install; the entry's source is "hub:<repo>@<commit>"."""
    from ..library import Library
    ctx = ctx or JobContext()
    target, commit, facts = download_adapter(repo_id, revision, ctx)
    library = library or Library()
    prov = {"source": f"hub:{repo_id}@{commit}", "license": facts.get("license"),
            "name": name or repo_id.split("/")[-1]}
    return library.install(target, name=name, ctx=ctx, provenance=prov, copy=False)


def parse_hub_ref(text: str) -> tuple[str, str | None] | None:
    """"hf:owner/repo@rev" / "hub:owner/repo" → (repo, rev); None for anything else."""
    for prefix in ("hf:", "hub:"):
        if text.startswith(prefix):
            ref = text[len(prefix):]
            repo, _, rev = ref.partition("@")
            return repo, rev or None
    return None
