"""Ludwig LLM fine-tunes: a local model folder (model_hyperparameters.json + model_weights/ holding a
PEFT save) or a Ludwig upload on the Hub (the PEFT files at the top plus ludwig_config.json)."""
from __future__ import annotations

from pathlib import Path

from adapters_backend.plugins.api import (
    CONFIG_NAME,
    Adapter,
    AdapterFormatError,
    card_metadata,
    modules_from_peft,
    open_weights,
    read_config,
)

HYPERPARAMETERS = "model_hyperparameters.json"
HUB_CONFIG = "ludwig_config.json"
WEIGHTS_DIR = "model_weights"
# Ludwig adapter type -> PEFT peft_type, for a folder whose model_weights/ lacks adapter_config.json
_PEFT_TYPES = {"lora": "LORA", "adalora": "ADALORA", "loha": "LOHA", "lokr": "LOKR"}


def _layout(path: Path) -> tuple[Path, Path] | None:
    """(Ludwig config file, folder holding the PEFT weights), or None if this is not a Ludwig folder."""
    path = Path(path)
    if not path.is_dir():
        return None
    if (path / HYPERPARAMETERS).is_file() and (path / WEIGHTS_DIR).is_dir():
        return path / HYPERPARAMETERS, path / WEIGHTS_DIR
    if (path / HUB_CONFIG).is_file() and (path / CONFIG_NAME).is_file():
        return path / HUB_CONFIG, path
    return None


def sniff(path: Path) -> float:
    return 0.95 if _layout(path) else 0.0


def _peft_config_from_ludwig(adapter: dict, ludwig_file: Path) -> dict:
    """What adapter_config.json would say, from Ludwig's `adapter` section (alpha None → 2·r)."""
    kind = str(adapter.get("type", "lora")).lower()
    if kind not in _PEFT_TYPES:
        raise AdapterFormatError(ludwig_file, f"Ludwig adapter type '{kind}' is not a LoRA-family adapter")
    r = adapter.get("r", 8)
    alpha = adapter.get("alpha")
    alpha = 2 * r if alpha is None and isinstance(r, (int, float)) else alpha
    key = "alpha" if kind in ("loha", "lokr") else "lora_alpha"
    cfg = {"peft_type": _PEFT_TYPES[kind], "r": r, key: alpha, "use_rslora": adapter.get("use_rslora", False),
           "use_dora": adapter.get("use_dora", False), "rank_pattern": adapter.get("rank_pattern") or {},
           "alpha_pattern": adapter.get("alpha_pattern") or {}}
    if kind == "adalora":
        cfg["init_r"] = adapter.get("init_r", 12)
    return cfg


def read(path: Path, base=None) -> Adapter:
    layout = _layout(path)
    if layout is None:
        raise AdapterFormatError(path, f"not a Ludwig model folder (needs {HYPERPARAMETERS} and {WEIGHTS_DIR}/, "
                                       f"or {HUB_CONFIG} beside {CONFIG_NAME})")
    ludwig_file, weights_dir = layout
    ludwig = read_config(ludwig_file)
    model_type = ludwig.get("model_type", "llm")
    if model_type != "llm":
        raise AdapterFormatError(ludwig_file, f"model_type is '{model_type}'; only Ludwig LLM fine-tunes have adapters")
    section = ludwig.get("adapter")
    if section is not None and not isinstance(section, dict):
        raise AdapterFormatError(ludwig_file, "the 'adapter' section must be an object")
    warnings: list[str] = []
    config_path = weights_dir / CONFIG_NAME
    if config_path.is_file():
        config = read_config(config_path)     # the resolved values PEFT saved: trusted over Ludwig's
    elif section:
        config = _peft_config_from_ludwig(section, ludwig_file)
        config_path = ludwig_file
    else:
        raise AdapterFormatError(ludwig_file, f"has no 'adapter' section and {weights_dir.name}/ has no {CONFIG_NAME}; "
                                              "this Ludwig model was trained without an adapter")
    weights, source = open_weights(weights_dir, warnings)
    modules = modules_from_peft(config, source, config_path, weights, warnings)
    quant = ludwig.get("quantization")
    if isinstance(quant, dict) and quant.get("bits"):
        warnings.append(f"trained on a {quant.get('bits')}-bit quantized base (QLoRA): on a full-precision base its "
                        "answers can differ slightly from what was trained")
    base_model = ludwig.get("base_model") if isinstance(ludwig.get("base_model"), str) else None
    base_model = base_model or (config.get("base_model_name_or_path")
                                if isinstance(config.get("base_model_name_or_path"), str) else None)
    metadata = {"ludwig_adapter_type": (section or {}).get("type"), **card_metadata(Path(path))}
    metadata.update({k: v for k, v in card_metadata(weights_dir).items() if k not in metadata})
    return Adapter(path=Path(path), format_id="ludwig", modules=modules, source=source, base_model=base_model,
                   config=config, metadata=metadata, warnings=warnings)
