"""Kohya sd-scripts and LyCORIS single-file adapters for language models."""
from adapters_backend.plugins.api import FormatContribution, PluginManifest

MANIFEST = PluginManifest(
    name="Kohya / LyCORIS adapters",
    description="Single .safetensors files with lora_down/lora_up/alpha, hada_*, lokr_* and dora_scale keys.",
    formats=(FormatContribution(id="kohya", name="Kohya / LyCORIS", sniff="loradeck_format_kohya.reader:sniff",
                                read="loradeck_format_kohya.reader:read"),),
)
