"""`inspect`: everything LoRA Deck can tell about an adapter, as one stable JSON-ready dict.

The dict's shape is versioned by its "schema" field and documented in the README; the CLI, the
library and the desktop app all show this same report.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from ..core.adapter import Adapter
from ..formats.registry import content_sha256, content_size, read_adapter
from ..units import format_bytes

log = logging.getLogger(__name__)

SCHEMA = "loradeck.inspect/1"


def guess_architecture(adapter: Adapter) -> str | None:
    """The adapter's declared architecture, else the one family whose tables name all its modules."""
    if adapter.architecture:
        return adapter.architecture
    from ..arch.name_map import hf_module_names
    from ..arch.registry import all_archs

    layers = {m.layer for m in adapter if m.layer is not None}
    n_layers = max(layers) + 1 if layers else 1
    names = set(adapter.modules)
    matches = []
    for spec in all_archs():
        try:
            # only the blocks the adapter names: `layers.300000000` must not build 300 million names
            known = set(hf_module_names(spec, n_layers, blocks=layers))
        except Exception as exc:  # a broken third-party table must not stop inspect
            log.warning("architecture table %s failed: %s", getattr(spec, "id", spec), exc)
            continue
        if names <= known:
            matches.append(spec.id)
    # Several families share module names (Llama, Mistral, Qwen2…); only a unique answer is a guess.
    return matches[0] if len(matches) == 1 else None


def _summary(values: list) -> object:
    """One value when uniform, else {min, max, distinct count}."""
    distinct = sorted(set(v for v in values if v is not None))
    if not distinct:
        return None
    if len(distinct) == 1:
        return distinct[0]
    return {"min": distinct[0], "max": distinct[-1], "distinct": len(distinct)}


def inspect_adapter(path: str | Path, base=None, adapter: Adapter | None = None) -> dict:
    """Read `path` (unless `adapter` is given) and describe it."""
    path = Path(path)
    adapter = adapter or read_adapter(path, base=base)
    modules = list(adapter)
    dtypes = Counter(m.dtype for m in modules)
    short_names = sorted({m.short_name for m in modules})
    layers = sorted({m.layer for m in modules if m.layer is not None})
    low_rank = [m for m in modules if m.is_low_rank or m.variant == "dora"]
    return {
        "schema": SCHEMA,
        "path": str(path),
        "format": adapter.format_id,
        "variants": adapter.variants,
        # rsLoRA is a scale rule (alpha/√r), not a kind of update: its own key, so `variants` keeps the
        # values readers of schema 1 know.
        "rslora": _count_rslora(low_rank),
        "base_model": adapter.base_model,
        "architecture": guess_architecture(adapter),
        "target_modules": short_names,
        "layers": layers,
        "module_count": len(modules),
        "rank": _summary([m.rank for m in low_rank]),
        "alpha": _summary([m.alpha for m in low_rank]),
        "scale": _summary([round(m.scale, 9) for m in low_rank]),
        "parameters": adapter.parameter_count(),
        "dtypes": dict(dtypes),
        "size_bytes": content_size(path),
        "sha256": content_sha256(path),
        "task_name": adapter.task_name,
        "alora_invocation_tokens": adapter.alora_invocation_tokens,
        "metadata": {k: v for k, v in adapter.metadata.items() if isinstance(v, (str, int, float, bool, type(None)))},
        "warnings": list(adapter.warnings),
        "modules": [
            {
                "name": m.name,
                "variant": m.variant,
                "rank": m.rank,
                "alpha": m.alpha,
                "scale": m.scale,
                "shape": [m.out_features, m.in_features],
                "dtype": m.dtype,
                "layer": m.layer,
                "fan_in_fan_out": m.fan_in_fan_out,
                "rslora": bool(m.extra.get("rslora")),
            }
            for m in modules
        ],
    }


def _count_rslora(modules) -> str:
    """"all", "some" or "none" of the low-rank modules scale by alpha/√r (rsLoRA)."""
    n = sum(1 for m in modules if m.extra.get("rslora"))
    return "none" if n == 0 else "all" if n == len(modules) else "some"


def _variants_text(report: dict) -> str:
    text = ", ".join(report["variants"])
    rslora = report.get("rslora", "none")
    if rslora == "all":
        text += " (rsLoRA: scale = alpha/√r)"
    elif rslora == "some":
        n = sum(1 for m in report["modules"] if m.get("rslora"))
        text += f" (rsLoRA in {n} of {report['module_count']} modules: scale = alpha/√r there)"
    return text


def format_report(report: dict) -> str:
    """Human-readable text for `loradeck inspect` without --json."""
    def show(v):
        if isinstance(v, dict):
            return f"{v['min']}..{v['max']} ({v['distinct']} distinct values)"
        return "-" if v is None else str(v)

    size = report["size_bytes"]
    lines = [
        f"Adapter      {report['path']}",
        f"Format       {report['format']}",
        f"Variants     {_variants_text(report)}",
        f"Base model   {report['base_model'] or '(not declared)'}",
        f"Architecture {report['architecture'] or '(unknown)'}",
        f"Targets      {', '.join(report['target_modules'])}",
        f"Layers       {_ranges(report['layers']) or '-'}",
        f"Modules      {report['module_count']}",
        f"Rank         {show(report['rank'])}",
        f"Alpha        {show(report['alpha'])}",
        f"Scale        {show(report['scale'])}",
        f"Parameters   {report['parameters']:,}",
        f"Dtypes       {', '.join(f'{k} ×{v}' for k, v in report['dtypes'].items())}",
        f"Size         {size:,} bytes ({format_bytes(size)})",
        f"sha256       {report['sha256']}",
    ]
    if report.get("task_name"):
        lines.append(f"Task         {report['task_name']}")
    if report.get("alora_invocation_tokens"):
        tokens = report["alora_invocation_tokens"]
        lines.append(f"Activated    aLoRA: acts only from its invocation tokens {tokens} on (their last "
                     "occurrence in the prompt); the cache before them is the base model's")
    uniform = all(isinstance(report[k], (int, float, type(None))) for k in ("rank", "alpha", "scale"))
    if not uniform:
        lines.append("")
        lines.append(f"{'module':58} {'variant':9} {'rank':>5} {'alpha':>8} {'scale':>10}  shape")
        for m in report["modules"]:
            alpha = "-" if m["alpha"] is None else f"{m['alpha']:g}"
            lines.append(f"{m['name']:58} {m['variant']:9} {m['rank']:>5} {alpha:>8} {m['scale']:>10.5g}  "
                         f"{m['shape'][0]}×{m['shape'][1]}")
    for w in report["warnings"]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def _ranges(values: list[int]) -> str:
    """[0,1,2,5] → "0-2, 5"."""
    out, start, prev = [], None, None
    for v in values:
        if start is None:
            start = prev = v
        elif v == prev + 1:
            prev = v
        else:
            out.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = v
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else str(start))
    return ", ".join(out)
