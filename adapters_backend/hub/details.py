"""What a Hub repository holds, before downloading it: files and sizes, licence, declared base model,
rank/alpha/targets from the small config file, the GGUF quantizations on offer, and whether the
adapter fits a chosen base model (decided on headers alone, see skeleton.py). Offline, a repository
already in the HF cache is described from there (cached.py)."""
from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import quote

from ..errors import BackendError, HubAccessError, HubError, HubNotFoundError, HubOfflineError
from ..kinds import is_count
from ..machine import total_memory
from ..model_ref import is_hub_id
from . import safe_names
from .client import cache_dir, endpoint, hub_errors
from .gguf_models import gguf_models, suggested_model
from .http import hub_get
from .reach import require_hub
from .search import base_of, format_of
from .skeleton import adapter_skeleton, download_small, small_json

log = logging.getLogger(__name__)
MAX_BASE_CONFIG_BYTES = 4 * 1024 * 1024     # a real config.json is a few kB; core/declared_base reads up to this


@dataclass
class RepoDetails:
    repo_id: str
    revision: str                      # the commit the details were read at (pin downloads to it)
    format: str | None
    license: str | None
    base_model: str | None
    gated: bool
    files: list[dict]                  # {"name", "size", "sha256"}
    rank: int | None = None
    alpha: float | None = None
    targets: list[str] = field(default_factory=list)
    peft_type: str | None = None
    gguf_files: list[dict] = field(default_factory=list)   # models: {"name", "parts", "size", "quant"}
    compat: dict | None = None         # CompatReport.as_dict() + "summary", or {"verdict": None, "summary": why}
    tags: list[str] = field(default_factory=list)
    from_cache: bool = False           # offline: read from the local HF cache, not the Hub
    note: str = ""                     # why (with from_cache)

    def as_dict(self) -> dict:
        return asdict(self)


def blob_etags(info) -> dict[str, str]:
    """Each file's blob name in the cache (its LFS sha256, or its git blob id), as the download names
    its partial file: from a model_info with files metadata. Only names that are plain hashes."""
    out = {}
    for s in info.siblings or []:
        etag = s.lfs.sha256 if s.lfs else s.blob_id
        if isinstance(etag, str) and _HASH.fullmatch(etag):
            out[s.rfilename] = etag
    return out


_HASH = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def model_info(repo_id: str, revision: str | None = None):
    """The repository at `revision`: its commit and files with sizes and hashes (huggingface_hub's
    ModelInfo, as `HfApi.model_info(files_metadata=True)` gives it, but retried when the connection drops)."""
    from huggingface_hub import ModelInfo
    safe_names.repo_id(repo_id)
    if revision is not None:
        safe_names.revision(repo_id, revision)
    require_hub(repo_id)
    url = f"{endpoint()}/api/models/{repo_id}" + (f"/revision/{quote(revision, safe='')}" if revision else "")
    with hub_errors(repo_id, f"revision {revision}" if revision else "the repository's details"):
        answer = hub_get(url, params={"blobs": True}).json()
    try:
        info = ModelInfo(**answer)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:      # huggingface_hub could not parse it
        raise HubError(repo_id, f"the Hub sent details that cannot be read ({type(exc).__name__}: {exc}); "
                                "try again later") from None
    safe_names.commit(repo_id, info.sha)          # it becomes a folder name in the cache
    _require_sizes(repo_id, info)
    return info


def _require_sizes(repo_id: str, info) -> None:
    """Every listed file has a name and a size that is a count of bytes, or none: downloads are
    planned, checked against the disk and bounded with them."""
    for s in info.siblings or []:
        if not isinstance(s.rfilename, str):
            raise HubError(repo_id, f"the Hub's file list holds a name that is not text ({s.rfilename!r})")
        for size in (s.size, s.lfs.size if s.lfs else None):
            if size is not None and not (is_count(size) and size >= 0):
                raise HubError(repo_id, f"the Hub's file list gives {s.rfilename} the size {size!r}, which is "
                                        "not a number of bytes; try again later")


def repo_details(repo_id: str, revision: str | None = None, base=None, engine: str = "llama.cpp") -> RepoDetails:
    """`base`: a local base model (path), a Hub model id, or an already loaded BaseModelInfo. When the
    Hub is switched off or out of reach, a repository already downloaded is described from the cache."""
    try:
        info = model_info(repo_id, revision)
    except HubOfflineError as exc:
        from .cached import cached_details
        d = cached_details(repo_id, revision, exc.problem)
        if d is None:
            raise
        return d if base is None else _compat_cached(d, base, engine)
    tags = list(info.tags or [])
    card = info.card_data
    files = [{"name": s.rfilename, "size": (s.lfs.size if s.lfs else s.size),
              "sha256": s.lfs.sha256 if s.lfs else None} for s in (info.siblings or [])]
    names = [f["name"] for f in files]
    lic = (getattr(card, "license", None) if card else None) or next(
        (t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
    d = RepoDetails(repo_id=repo_id, revision=info.sha or revision or "main", format=format_of(tags, info.library_name),
                    license=lic, base_model=base_of(tags, getattr(card, "base_model", None) if card else None),
                    gated=bool(info.gated), files=files, tags=tags)
    d.gguf_files = gguf_models(files)
    if "adapter_config.json" in names:
        try:
            cfg = small_json(repo_id, "adapter_config.json", d.revision,
                             next((f["size"] for f in files if f["name"] == "adapter_config.json"), None))
        except HubAccessError as exc:      # gated/private: the listing is public, the files are not
            d.gated = True
            d.compat = {"verdict": None, "summary": exc.problem}
            return d
        read_adapter_config(d, cfg)
    if base is not None:
        fetch_declared_base_config(d.base_model)
        d.compat = _compat(d, names, base, engine)
    return d


def fetch_declared_base_config(declared: str | None) -> Path | None:
    """Bring the config.json of the base model an adapter says it was trained on into the HF cache,
    where the compatibility check reads its model family (core/declared_base.py, which never goes
    online). Best effort, one small file once: offline, unknown, gated or oversized gives None."""
    if not isinstance(declared, str) or not is_hub_id(declared.strip()):
        return None
    from huggingface_hub import try_to_load_from_cache
    repo = declared.strip()
    try:
        cached = try_to_load_from_cache(repo, "config.json", cache_dir=cache_dir())
        if isinstance(cached, str):
            return Path(cached)
        info = model_info(repo)
        size = next((s.size for s in info.siblings or [] if s.rfilename == "config.json"), None)
        if size is None or size > MAX_BASE_CONFIG_BYTES:
            log.info("declared base %s: no config.json of at most %d bytes", repo, MAX_BASE_CONFIG_BYTES)
            return None
        return download_small(repo, "config.json", None)      # "main", as the check looks it up
    except (BackendError, OSError, ValueError) as exc:
        log.info("declared base %s: config.json not fetched (%s)", repo, exc)
        return None


def read_adapter_config(d: RepoDetails, cfg) -> None:
    """Rank, alpha, targets and declared base from a PEFT adapter_config.json."""
    if not isinstance(cfg, dict):
        return
    d.format = "peft"
    d.peft_type = cfg.get("peft_type")
    d.rank = cfg.get("r")
    d.alpha = cfg.get("lora_alpha") if cfg.get("lora_alpha") is not None else cfg.get("alpha")
    targets = cfg.get("target_modules")
    d.targets = [targets] if isinstance(targets, str) else sorted(t for t in targets or [] if isinstance(t, str))
    d.base_model = d.base_model or cfg.get("base_model_name_or_path")


def _compat(d: RepoDetails, names: list[str], base, engine: str) -> dict:
    from ..core.compat import check_compatibility
    from ..formats.registry import read_adapter
    if d.format == "gguf" or not any(n.endswith(".safetensors") and "/" not in n for n in names):
        return {"verdict": None, "summary": "cannot be checked before download (no safetensors adapter at the top "
                                            "of the repository); download it and run `loradeck check`"}
    try:
        base_info = load_base(base)
        with tempfile.TemporaryDirectory(prefix="loradeck-skel-") as tmp:
            skel = adapter_skeleton(d.repo_id, d.revision, names, Path(tmp) / d.repo_id.replace("/", "--"),
                                    {f["name"]: f["size"] for f in d.files})
            adapter = read_adapter(skel, base=base_info)
            report = check_compatibility(adapter, base_info, engine)
            _fill_from_adapter(d, adapter)
    except BackendError as exc:
        return {"verdict": None, "summary": f"could not check: {exc}"}
    return {**report.as_dict(), "summary": report.summary, "compatible": report.compatible}


def _compat_cached(d: RepoDetails, base, engine: str) -> RepoDetails:
    """The verdict for a repository in the cache, read from its downloaded files."""
    from ..core.compat import check_compatibility
    from ..formats.registry import read_adapter
    from .cached import adapter_target
    target = adapter_target(d)
    if target is None:
        d.compat = {"verdict": None, "summary": "no adapter weights in the cached files to check"}
        return d
    try:
        base_info = load_base(base)
        adapter = read_adapter(target, base=base_info)
        report = check_compatibility(adapter, base_info, engine)
        _fill_from_adapter(d, adapter)
    except BackendError as exc:
        d.compat = {"verdict": None, "summary": f"could not check: {exc}"}
        return d
    d.compat = {**report.as_dict(), "summary": report.summary, "compatible": report.compatible}
    return d


def _fill_from_adapter(d: RepoDetails, adapter) -> None:
    if d.rank is None and adapter.modules:
        first = next(iter(adapter.modules.values()))
        d.rank, d.alpha = first.rank, first.alpha
        d.targets = d.targets or sorted({m.short_name for m in adapter.modules.values()})


def load_base(base):
    from ..core.base_model import BaseModelInfo, load_base_model
    from .skeleton import hub_base_info
    if isinstance(base, BaseModelInfo):
        return base
    p = Path(str(base)).expanduser()
    if p.exists():
        return load_base_model(p)
    if re.fullmatch(r"[\w.\-]+/[\w.\-]+", str(base)):
        return hub_base_info(str(base))
    return load_base_model(p)   # raises "no such file or folder"


def gguf_files(repo_id: str, revision: str | None = None) -> list[dict]:
    """The GGUF models of a model repo (a split model's parts as one), smallest first:
    {"name", "parts", "size", "quant"} (see gguf_models.py)."""
    info = model_info(repo_id, revision)
    return gguf_models([{"name": s.rfilename, "size": s.lfs.size if s.lfs else s.size} for s in info.siblings or []])


def pick_gguf(repo_id: str, quant: str | None = None, revision: str | None = None) -> dict:
    """The model for quantization `quant` ("Q4_K_M"); without one, the one suggested for this computer
    (Q4_K_M if it fits its memory, see gguf_models.suggested_model)."""
    models = gguf_files(repo_id, revision)
    if not models:
        raise HubNotFoundError(repo_id, "no .gguf files in this repository")
    if not quant:
        return suggested_model(models, total_memory())
    hit = [m for m in models if m["quant"] == quant.upper()]
    if hit:
        return hit[0]
    have = ", ".join(sorted({m["quant"] or m["name"] for m in models}))
    raise HubNotFoundError(repo_id, f"no {quant} file; available: {have}")
