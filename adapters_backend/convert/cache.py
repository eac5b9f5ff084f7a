"""Converted adapters, cached so engines (and repeated CLI runs) reuse them.

Key = sha256 of (converter version, the adapter's content hash, the base's identity, the options).
The base identity is what conversion depends on: architecture, head counts and every tensor's name
and shape — not the weights, so the same adapter converted for a Q4_K_M and a Q8_0 file of one model
is shared. DoRA needs the base weights, so then the base file itself (path, size, mtime) joins the key.

Files live in <cache_dir>/converted/<key>.gguf (cache_dir: platformdirs user_cache_dir("loradeck"),
env LORADECK_CACHE_DIR overrides), with <key>.json holding the conversion report.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..atomic import write_json_atomic
from ..core.adapter import Adapter
from ..core.base_model import BaseModelInfo
from ..disk_cache import mark_used, trim_cache
from ..disk_space import writing
from ..file_identity import stat_identity
from ..jobs import JobContext
from ..paths import cache_dir
from .factors import is_dense
from .to_gguf import DEFAULT_MAX_ERROR, ConvertResult, convert_to_gguf, default_outtype, opened_inputs

CONVERTER_VERSION = "1"


def base_identity(base: BaseModelInfo, needs_weights: bool) -> str:
    # In GGUF terms, so a GGUF file and the HF folder it was converted from share one identity.
    from .to_gguf import gguf_arch
    space = getattr(base, "_gguf", None) or base.tensor_shapes   # GGUF tensor names → shapes
    facts = {"arch": gguf_arch(base), "n_head": base.n_head, "n_head_kv": base.n_head_kv,
             "head_dim": base.head_dim, "tied": base.tied,
             "tensors": sorted((k.removesuffix(".weight"), list(v)) for k, v in space.items() if len(v) >= 2)}
    if needs_weights and base.path is not None:
        # Every part of a split model: a part updated alone changes the weights the conversion read.
        facts["file"] = [stat_identity(f) for f in (base.path, *base.gguf_parts)]
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def adapter_identity(adapter: Adapter) -> str:
    from ..formats.registry import content_sha256
    src = adapter.metadata.get("source_path") or adapter.path
    return content_sha256(Path(src))


def cache_key(adapter: Adapter, base: BaseModelInfo, outtype: str, max_error: float) -> str:
    dense = any(is_dense(m) for m in adapter)
    parts = [CONVERTER_VERSION, adapter_identity(adapter), base_identity(base, dense), outtype,
             repr(float(max_error)) if dense else "-"]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def converted_dir() -> Path:
    d = cache_dir() / "converted"
    with writing(d):
        d.mkdir(parents=True, exist_ok=True)
    return d


def _result_to_json(r: ConvertResult) -> dict:
    return {"n_tensors": r.n_tensors, "alpha": r.alpha, "outtype": r.outtype, "ranks": r.ranks,
            "dora": {k: list(v) for k, v in r.dora.items()}, "warnings": r.warnings, "notes": r.notes}


def _result_from_json(path: Path, data: dict) -> ConvertResult:
    return ConvertResult(path, data["n_tensors"], data["alpha"], data["outtype"], dict(data["ranks"]),
                         {k: (int(v[0]), float(v[1])) for k, v in data["dora"].items()},
                         list(data["warnings"]), list(data["notes"]), cached=True)


def convert_cached(adapter, base, *, outtype: str | None = None, max_error: float = DEFAULT_MAX_ERROR,
                   ctx: JobContext | None = None) -> ConvertResult:
    """The converted GGUF for (adapter, base, options): from the cache, or converted into it."""
    with opened_inputs(adapter, base) as (adapter, base):
        return _cached(adapter, base, outtype, max_error, ctx)


def _cached(adapter: Adapter, base: BaseModelInfo, outtype: str | None, max_error: float,
            ctx: JobContext | None) -> ConvertResult:
    outtype = (outtype or default_outtype(adapter)).lower()
    key = cache_key(adapter, base, outtype, max_error)
    folder = converted_dir()
    gguf_path, report_path = folder / f"{key}.gguf", folder / f"{key}.json"
    if gguf_path.is_file() and report_path.is_file():
        try:
            result = _result_from_json(gguf_path, json.loads(report_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            pass   # a damaged report: convert again
        else:
            mark_used(gguf_path)
            mark_used(report_path)
            return result
    result = convert_to_gguf(adapter, base, gguf_path, outtype=outtype, max_error=max_error, ctx=ctx)
    write_json_atomic(report_path, _result_to_json(result))
    trim_cache(folder)
    return result
