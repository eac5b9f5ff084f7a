"""The model families LoRA Deck knows, as data (see tables.py)."""
from adapters_backend.plugins.api import ArchitectureContribution, PluginManifest

_IDS = ("llama", "mistral", "mixtral", "gemma", "gemma2", "phi3", "phi2", "qwen2", "qwen", "command-r", "dbrx",
        "gpt2", "bloom")

MANIFEST = PluginManifest(
    name="Core architectures",
    description="Llama, Mistral, Mixtral, Gemma, Gemma 2, Phi-3, Phi-2, Qwen2, Qwen, Command-R, DBRX, GPT-2, Bloom.",
    architectures=tuple(ArchitectureContribution(id=i, table=f"loradeck_architectures.tables:{i.upper().replace('-', '_')}")
                        for i in _IDS),
)
