"""Read "Simple LoRA" adapters into LoRA Deck's canonical form.

The format (made up for this example):

    my-adapter/
        simple_lora.json          {"simple_lora": 1, "alpha": 16, "rslora": false,
                                   "base_model": "...", "architecture": "llama",
                                   "alphas": {"<module>": 8}}            (all but simple_lora optional)
        simple_lora.safetensors   "<module>.down"  (rank, in_features)
                                  "<module>.up"    (out_features, rank)

<module> is the base model's module path, e.g. "model.layers.0.self_attn.q_proj". The update of
a module is  ΔW = scale · up @ down,  with scale = alpha / rank, or alpha / sqrt(rank) when
"rslora" is true. A module's alpha is "alphas"[module] if given, else "alpha", else the rank
(so scale 1).

LoRA Deck calls two functions:
    sniff(path) -> float   0 = not mine ... 1 = certainly mine. Must be cheap: headers only.
    read(path, base=None) -> Adapter
Errors about the file are raised as AdapterFormatError(path, message); LoRA Deck shows the message
with the file name. Any other exception is reported as a bug in this plugin, not as a crash.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from adapters_backend.plugins.api import Adapter, AdapterFormatError, ModuleDelta, SafetensorsSource

CONFIG_NAME = "simple_lora.json"
WEIGHTS_NAME = "simple_lora.safetensors"
MAX_CONFIG_BYTES = 1 << 20


def _folder(path: Path) -> Path | None:
    """The adapter folder for `path` (the folder itself or its simple_lora.json), or None."""
    path = Path(path)
    if path.is_dir():
        return path if (path / CONFIG_NAME).is_file() else None
    if path.name == CONFIG_NAME and path.is_file():
        return path.parent
    return None


def _load_config(config: Path) -> dict:
    if config.stat().st_size > MAX_CONFIG_BYTES:
        raise AdapterFormatError(config, "simple_lora.json is larger than 1 MB; not a Simple LoRA config")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterFormatError(config, f"not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("simple_lora") != 1:
        raise AdapterFormatError(config, 'expected a JSON object with "simple_lora": 1')
    return data


def sniff(path: Path) -> float:
    folder = _folder(path)
    if folder is None:
        return 0.0
    try:
        with open(folder / CONFIG_NAME, "rb") as f:
            head = f.read(4096)
    except OSError:
        return 0.0
    # A cheap look: the marker key near the start. read() does the real validation.
    return 0.95 if b'"simple_lora"' in head else 0.2


def _number(config: Path, what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise AdapterFormatError(config, f"{what} must be a positive number, got {value!r}")
    return float(value)


def read(path: Path, base=None) -> Adapter:
    folder = _folder(path)
    if folder is None:
        raise AdapterFormatError(Path(path), f"no {CONFIG_NAME} here")
    config_path, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    cfg = _load_config(config_path)
    if not weights.is_file():
        raise AdapterFormatError(weights, "missing: a Simple LoRA needs simple_lora.safetensors beside its JSON")
    source = SafetensorsSource(weights)

    rslora = bool(cfg.get("rslora", False))
    default_alpha = cfg.get("alpha")
    alphas = cfg.get("alphas") or {}
    if not isinstance(alphas, dict):
        raise AdapterFormatError(config_path, '"alphas" must map module names to numbers')

    # Group "<module>.down" / "<module>.up" keys by module, in file order.
    pairs: dict[str, dict[str, str]] = {}
    for key in source.keys():
        module, _, role = key.rpartition(".")
        if role not in ("down", "up") or not module:
            raise AdapterFormatError(weights, f"unexpected tensor '{key}' (keys end in .down or .up)")
        pairs.setdefault(module, {})[role] = key

    modules: dict[str, ModuleDelta] = {}
    for name, roles in pairs.items():
        if set(roles) != {"down", "up"}:
            raise AdapterFormatError(weights, f"module {name}: needs both .down and .up")
        down, up = source.shape(roles["down"]), source.shape(roles["up"])
        if len(down) != 2 or len(up) != 2 or min(*down, *up) <= 0:
            raise AdapterFormatError(weights, f"module {name}: factors must be non-empty matrices, "
                                              f"got {list(down)} and {list(up)}")
        rank, in_features = down
        out_features, up_rank = up
        if up_rank != rank:
            raise AdapterFormatError(weights, f"module {name}: down has rank {rank}, up has {up_rank}")
        raw_alpha = alphas.get(name, default_alpha)
        alpha = float(rank) if raw_alpha is None else _number(config_path, f"alpha of {name}", raw_alpha)
        scale = alpha / math.sqrt(rank) if rslora else alpha / rank
        modules[name] = ModuleDelta(
            name=name, variant="lora", out_features=out_features, in_features=in_features,
            rank=rank, alpha=alpha, scale=scale,
            # Role names are LoRA Deck's: for variant "lora", A is (rank, in) and B is (out, rank).
            roles={"A": roles["down"], "B": roles["up"]},
            dtype=source.dtype(roles["down"]),
            extra={"rslora": rslora},
        )
    unknown = set(alphas) - set(modules)
    warnings = [f'"alphas" names modules not in the weights: {", ".join(sorted(unknown))}'] if unknown else []
    return Adapter(
        path=Path(path), format_id="simple-lora", modules=modules, source=source,
        base_model=cfg.get("base_model"), architecture=cfg.get("architecture"),
        config=cfg, metadata={"trainer": "simple-lora example"}, warnings=warnings,
    )
