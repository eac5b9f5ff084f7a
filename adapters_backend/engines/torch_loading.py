"""What the PyTorch engine accepts as a model, checked around transformers' `from_pretrained`.

transformers is generous in ways a desktop app must not be: it unpickles `pytorch_model.bin` when no
safetensors are there, builds a model of whatever size config.json states, and fills weights the
checkpoint lacks with random numbers, saying so only in a log line.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import BaseModelError

PICKLED_MODEL = ("has no weights in safetensors (model.safetensors); LoRA Deck never opens pickled weights "
                 "(pytorch_model.bin, .pt), which can run code when they are opened. Pick a version of the model "
                 "with model.safetensors (most repositories on the Hub have one)")


def no_safetensors(exc: BaseException) -> bool:
    """Whether transformers refused for want of safetensors weights (a folder's or a Hub repository's)."""
    text = str(exc)
    return "safetensors" in text and ("no file named" in text or "does not appear to have a file named" in text)


def check_config(source: str, config) -> None:
    """config.json's counts within the limits every other reader of LoRA Deck keeps, before transformers
    builds a model of that size."""
    from ..core.base_model import check_counts
    text = config.get_text_config() if hasattr(config, "get_text_config") else config

    def count(*names) -> int:
        for name in names:
            v = getattr(text, name, None)
            if isinstance(v, int) and not isinstance(v, bool):
                return v
        return 0
    check_counts(Path(source), "config.json", count("num_hidden_layers", "n_layer"),
                 count("num_local_experts", "num_experts", "n_routed_experts"))


def check_weights_complete(source: str, loading: dict) -> None:
    """Weights the config describes but the checkpoint lacks: transformers fills them with random numbers
    and loads anyway (an incomplete download, or a config.json of another model)."""
    missing = sorted(loading.get("missing_keys") or ())
    if missing:
        raise BaseModelError(source, f"its weights lack {len(missing)} tensors that config.json describes (e.g. "
                                     f"{', '.join(missing[:3])}): the download is incomplete or config.json belongs "
                                     "to another model. transformers would fill them with random numbers")
