"""What a format or architecture plugin may use from LoRA Deck: the one stable import surface.

Plugins (the built-in ones in plugins/ and third-party packages alike) import from here only; the
modules behind these names may move without breaking them. See docs/writing-a-plugin.md. Names are
resolved on first use, so an architecture table that needs only `ArchSpec` imports nothing else.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "TensorNameMap": "..arch.name_map", "hf_module_names": "..arch.name_map",
    "all_archs": "..arch.registry", "find_arch": "..arch.registry", "find_archs": "..arch.registry",
    "ArchSpec": "..arch.spec", "FusedRule": "..arch.spec", "ModuleRule": "..arch.spec",
    "Adapter": "..core.adapter", "ModuleDelta": "..core.adapter", "TensorSource": "..core.adapter",
    "AdapterFormatError": "..errors",
    "CONFIG_NAME": "..formats.peft_layout", "card_metadata": "..formats.peft_layout",
    "lokr_module": "..formats.peft_layout", "modules_from_peft": "..formats.peft_layout",
    "open_weights": "..formats.peft_layout", "read_config": "..formats.peft_layout",
    "SafetensorsSource": "..formats.safetensors_io", "read_safetensors_header": "..formats.safetensors_io",
    "GGUFError": "..gguf.header", "read_gguf_header": "..gguf.header:read_header",
    "TensorFile": "..gguf.tensors",
    "ArchitectureContribution": ".manifest", "FormatContribution": ".manifest", "PluginManifest": ".manifest",
}
__all__ = sorted([*_EXPORTS, "inverse_transform"])


def __getattr__(name: str):
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attr = where.partition(":")
    value = getattr(importlib.import_module(module, __package__), attr or name)
    globals()[name] = value
    return value


def inverse_transform(name: str, rows, hparams):
    """Undo llama.cpp's converter row transform `name` (q/k head permutation, …) with the base's head counts."""
    from ..arch.transforms import apply
    return apply(name, rows, hparams, inverse=True)
