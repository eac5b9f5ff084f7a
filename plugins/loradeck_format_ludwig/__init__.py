"""Ludwig LLM fine-tunes (model folder, or a Ludwig upload on the Hub)."""
from adapters_backend.plugins.api import FormatContribution, PluginManifest

MANIFEST = PluginManifest(
    name="Ludwig adapters",
    description="Ludwig model folders (model_hyperparameters.json + model_weights/) and Hub uploads "
                "(PEFT files + ludwig_config.json).",
    formats=(FormatContribution(id="ludwig", name="Ludwig", sniff="loradeck_format_ludwig.reader:sniff",
                                read="loradeck_format_ludwig.reader:read"),),
)
