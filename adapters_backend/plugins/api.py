"""What a format or architecture plugin may use from LoRA Deck: the one stable import surface.

Plugins (the built-in ones in plugins/ and third-party packages alike) import from here only; the
modules behind these names may move without breaking them. See docs/writing-a-plugin.md.
"""
from __future__ import annotations

from ..arch.name_map import TensorNameMap, hf_module_names
from ..arch.registry import all_archs, find_arch, find_archs
from ..arch.spec import ArchSpec, FusedRule, ModuleRule
from ..arch.transforms import apply as _apply_transform
from ..core.adapter import Adapter, ModuleDelta, TensorSource
from ..errors import AdapterFormatError
from ..formats.peft_layout import CONFIG_NAME, card_metadata, lokr_module, modules_from_peft, open_weights, read_config
from ..formats.safetensors_source import SafetensorsSource, read_safetensors_header
from ..gguf.header import GGUFError
from ..gguf.header import read_header as read_gguf_header
from ..gguf.tensors import TensorFile
from .manifest import ArchitectureContribution, FormatContribution, PluginManifest


def inverse_transform(name: str, rows, hparams):
    """Undo llama.cpp's converter row transform `name` (q/k head permutation, …) with the base's head counts."""
    return _apply_transform(name, rows, hparams, inverse=True)


__all__ = ["CONFIG_NAME", "Adapter", "AdapterFormatError", "ArchSpec", "ArchitectureContribution",
           "FormatContribution", "FusedRule", "GGUFError", "ModuleDelta", "ModuleRule", "PluginManifest",
           "SafetensorsSource", "TensorFile", "TensorNameMap", "TensorSource", "all_archs", "card_metadata",
           "find_arch", "find_archs", "hf_module_names", "inverse_transform", "lokr_module", "modules_from_peft", "open_weights",
           "read_config", "read_gguf_header", "read_safetensors_header"]
