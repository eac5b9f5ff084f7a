"""PEFT adapter folders: adapter_config.json + adapter_model.safetensors."""
from __future__ import annotations

from pathlib import Path

from adapters_backend.plugins.api import (
    CONFIG_NAME,
    Adapter,
    card_metadata,
    modules_from_peft,
    open_weights,
    read_config,
)

# A Ludwig folder holds a PEFT save too; its own plugin claims it with a higher score.
_LUDWIG_MARKERS = ("ludwig_config.json", "model_hyperparameters.json")


def sniff(path: Path) -> float:
    path = Path(path)
    if path.is_file() and path.name in (CONFIG_NAME, "adapter_model.safetensors"):
        path = path.parent
    if not path.is_dir() or not (path / CONFIG_NAME).is_file():
        return 0.0
    return 0.5 if any((path / m).is_file() for m in _LUDWIG_MARKERS) else 0.9


def read(path: Path, base=None) -> Adapter:
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    config_path = folder / CONFIG_NAME
    config = read_config(config_path)
    warnings: list[str] = []
    weights, source = open_weights(folder, warnings)
    modules = modules_from_peft(config, source, config_path, weights, warnings)
    card = card_metadata(folder)
    metadata = {k: config[k] for k in ("peft_type", "task_type", "peft_version") if config.get(k) is not None}
    metadata.update(card)
    base_model = config.get("base_model_name_or_path")
    if not isinstance(base_model, str) or not base_model:
        card_base = card.get("base_model")
        base_model = card_base if isinstance(card_base, str) else None
    return Adapter(path=folder, format_id="peft", modules=modules, source=source, base_model=base_model,
                   config=config, metadata=metadata, warnings=warnings)
