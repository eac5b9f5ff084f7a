"""llama.cpp LoRA adapters in GGUF."""
from adapters_backend.plugins.api import FormatContribution, PluginManifest

MANIFEST = PluginManifest(
    name="GGUF LoRA adapters",
    description="llama.cpp runtime LoRA files (general.type=adapter, adapter.type=lora).",
    formats=(FormatContribution(id="gguf", name="GGUF LoRA", sniff="loradeck_format_gguf.reader:sniff",
                                read="loradeck_format_gguf.reader:read"),),
)
