"""PEFT adapters (folder with adapter_config.json + adapter_model.safetensors)."""
from adapters_backend.plugins.api import FormatContribution, PluginManifest

MANIFEST = PluginManifest(
    name="PEFT adapters",
    description="Hugging Face PEFT: LoRA, rsLoRA, rank/alpha patterns, DoRA, AdaLoRA, LoHa, LoKr.",
    formats=(FormatContribution(id="peft", name="PEFT", sniff="loradeck_format_peft.reader:sniff",
                                read="loradeck_format_peft.reader:read"),),
)
