"""Kohya sd-scripts and LyCORIS single-file adapters (.safetensors).

Keys are `<stem>.<role>` with stem = prefix + module path with "_" for "." (see names.py). Scales
follow the trainers: LoRA and LoHa alpha/dim (alpha missing or 0 → dim); LoKr alpha/dim when a factor
is decomposed, and exactly 1 when both factors are stored full (LyCORIS ignores alpha then).
`dora_scale` (LyCORIS DoRA) is a per-row magnitude when shaped (out, 1), per-column when (1, in).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from adapters_backend.plugins.api import (
    Adapter,
    AdapterFormatError,
    ModuleDelta,
    SafetensorsSource,
    lokr_module,
    read_safetensors_header,
)

from .names import resolve

_ROLES = {"lora_down.weight": "A", "lora_up.weight": "B", "alpha": "alpha", "dora_scale": "magnitude",
          "hada_w1_a": "w1a", "hada_w1_b": "w1b", "hada_w2_a": "w2a", "hada_w2_b": "w2b",
          "lokr_w1": "w1", "lokr_w1_a": "w1a", "lokr_w1_b": "w1b", "lokr_w2": "w2", "lokr_w2_a": "w2a",
          "lokr_w2_b": "w2b"}
_CONV_ONLY = ("lora_mid.weight", "hada_t1", "hada_t2", "lokr_t2")
_MARKERS = ("lora_down.weight", "hada_w1_a", "lokr_w1", "lokr_w1_a")


def sniff(path: Path) -> float:
    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".safetensors":
        return 0.0
    try:
        tensors, _meta, _start = read_safetensors_header(path)
    except AdapterFormatError:
        return 0.1          # ours by name; reading it will say what is wrong
    keys = list(tensors)
    if any(k.startswith("base_model.model.") for k in keys):
        return 0.0          # a PEFT weights file on its own
    return 0.9 if any(k.endswith(_MARKERS) for k in keys) else 0.0


def _alpha(source: SafetensorsSource, key: str | None, dim: int, weights: Path) -> float:
    if key is None:
        return float(dim)
    shape = source.shape(key)
    if math.prod(shape) != 1:
        raise AdapterFormatError(weights, f"'{key}' should hold one number, but has shape {list(shape)}")
    value = float(source.read(key).reshape(-1)[0])
    if not math.isfinite(value):
        raise AdapterFormatError(weights, f"'{key}' is {value}")
    return value if value != 0 else float(dim)


def _shape2(source, key: str, weights: Path) -> tuple[int, int]:
    shape = tuple(source.shape(key))
    if len(shape) != 2 or min(shape) <= 0:
        raise AdapterFormatError(weights, f"tensor '{key}' has shape {list(shape)}; expected a 2-D matrix "
                                          "(a convolution adapter is not for a language model)")
    return shape


def _module(name: str, roles: dict, source, weights: Path) -> ModuleDelta:
    alpha_key = roles.pop("alpha", None)
    dtype = source.dtype(next(iter(roles.values())))
    mag_shape = tuple(source.shape(roles["magnitude"])) if "magnitude" in roles else None
    if "A" in roles or "B" in roles:
        if not ("A" in roles and "B" in roles):
            raise AdapterFormatError(weights, f"module {name}: lora_down and lora_up must come as a pair")
        a, b = _shape2(source, roles["A"], weights), _shape2(source, roles["B"], weights)
        if a[0] != b[1]:
            raise AdapterFormatError(weights, f"module {name}: lora_down has {a[0]} rows, lora_up {b[1]} columns")
        alpha = _alpha(source, alpha_key, a[0], weights)
        out_f, in_f, rank, scale, variant, kept = b[0], a[1], a[0], alpha / a[0], "lora", {"A": roles["A"], "B": roles["B"]}
    elif any(".hada_" in key for key in roles.values()):
        missing = [k for k in ("w1a", "w1b", "w2a", "w2b") if k not in roles]
        if missing:
            raise AdapterFormatError(weights, f"module {name}: LoHa factor(s) {missing} missing")
        w1a, w1b = _shape2(source, roles["w1a"], weights), _shape2(source, roles["w1b"], weights)
        w2a, w2b = _shape2(source, roles["w2a"], weights), _shape2(source, roles["w2b"], weights)
        if not (w1a[1] == w1b[0] and w2a[1] == w2b[0] and w1a[0] == w2a[0] and w1b[1] == w2b[1]):
            raise AdapterFormatError(weights, f"module {name}: LoHa factor shapes {w1a}, {w1b}, {w2a}, {w2b} do not fit")
        alpha = _alpha(source, alpha_key, w1b[0], weights)
        out_f, in_f, rank, scale, variant = w1a[0], w1b[1], w1b[0], alpha / w1b[0], "loha"
        kept = {k: roles[k] for k in ("w1a", "w1b", "w2a", "w2b")}
    else:
        dim = source.shape(roles["w1a"])[1] if "w1a" in roles else (
            source.shape(roles["w2a"])[1] if "w2a" in roles else None)
        alpha = _alpha(source, alpha_key, dim or 1, weights)
        scale = alpha / dim if dim else 1.0      # both factors full: LyCORIS uses 1
        mod = lokr_module(name, {k: v for k, v in roles.items() if k != "magnitude"}, source, weights, scale,
                          alpha, dtype, extra={"lycoris_full_factors": dim is None})
        out_f, in_f, rank, variant = mod.out_features, mod.in_features, mod.rank, "lokr"
        kept = dict(mod.roles)
    extra: dict = {}
    axis = "row"
    if mag_shape is not None:
        if math.prod(mag_shape) == out_f and (len(mag_shape) == 1 or mag_shape[-1] == 1):
            axis = "row"
        elif math.prod(mag_shape) == in_f and len(mag_shape) == 2 and mag_shape[0] == 1:
            axis = "column"
        else:
            raise AdapterFormatError(weights, f"module {name}: dora_scale shape {list(mag_shape)} fits neither "
                                              f"({out_f}, 1) nor (1, {in_f})")
        kept["magnitude"] = roles["magnitude"]
        if variant == "lora":
            variant = "dora"
        else:
            extra["dora"] = True
    return ModuleDelta(name, variant, out_f, in_f, rank, alpha, scale, kept, dtype, dora_axis=axis, extra=extra)


def read(path: Path, base=None) -> Adapter:
    weights = Path(path)
    source = SafetensorsSource(weights)
    _tensors, st_meta, _start = read_safetensors_header(weights)
    groups: dict[str, dict[str, str]] = {}
    ignored: list[str] = []
    for key in source.keys():
        if key.endswith(_CONV_ONLY):
            raise AdapterFormatError(weights, f"tensor '{key}' is a convolution (Tucker) factor; LoRA Deck adapts "
                                              "language models, whose layers are linear")
        stem, _, role = key.partition(".")
        if role not in _ROLES:
            ignored.append(key)
            continue
        groups.setdefault(stem, {})[_ROLES[role]] = key
    groups = {s: r for s, r in groups.items() if set(r) - {"alpha", "magnitude"}}
    if not groups:
        raise AdapterFormatError(weights, "has no lora_down/lora_up, hada_* or lokr_* tensors")
    found, missing, arch, notes = resolve(list(groups), base)
    if not found:
        hint = "" if base is not None else "; give the base model so its module names can be matched"
        raise AdapterFormatError(weights, f"none of its {len(groups)} module names match a known model "
                                          f"(first: {next(iter(groups))}){hint}")
    warnings = list(notes)
    if missing:
        warnings.append(f"{len(missing)} module(s) not matched and skipped: {', '.join(sorted(missing)[:5])}"
                        + (" …" if len(missing) > 5 else ""))
    if ignored:
        warnings.append(f"ignored {len(ignored)} tensor(s) of no known kind (first: {ignored[0]})")
    modules = {}
    for stem, roles in groups.items():
        if stem in found:
            mod = _module(found[stem], dict(roles), source, weights)
            modules[mod.name] = mod
    metadata = {k: v for k, v in st_meta.items() if k.startswith(("ss_", "modelspec."))}
    args = st_meta.get("ss_network_args")
    if isinstance(args, str):
        try:
            metadata["network_args"] = json.loads(args)
        except (ValueError, RecursionError):     # informational only: a damaged value is left out
            pass
    if st_meta.get("modelspec.license"):
        metadata["license"] = st_meta["modelspec.license"]
    base_model = st_meta.get("ss_base_model_version") or st_meta.get("ss_sd_model_name") or None
    return Adapter(path=weights, format_id="kohya", modules=modules, source=source, base_model=base_model,
                   architecture=arch, config={"safetensors_metadata": dict(st_meta)}, metadata=metadata,
                   warnings=warnings)
