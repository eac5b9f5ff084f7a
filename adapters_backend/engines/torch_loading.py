"""What the PyTorch engine accepts as a model, checked around transformers' `from_pretrained`.

transformers is generous in ways a desktop app must not be: it unpickles `pytorch_model.bin` when no
safetensors are there, builds a model of whatever size config.json states, and fills weights the
checkpoint lacks with random numbers, saying so only in a log line.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import BackendError, BaseModelError
from ..json_input import read_json_file

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


def read_checked_config(source: str, folder: str, engine_dtype_bytes: int, dtype_name: str):
    """config.json through transformers, checked before any memory is set aside for the model it describes."""
    from transformers import AutoConfig
    try:
        config = AutoConfig.from_pretrained(folder)
    except (OSError, ValueError):
        raise                      # a missing or unreadable file: the engine's handlers word it
    except Exception as exc:        # a value transformers' config class trips over (0 heads: ZeroDivisionError)
        raise BaseModelError(source, f"transformers cannot read its config.json ({type(exc).__name__}: "
                                     f"{exc})") from None
    check_config(source, config)
    if Path(folder).is_dir():
        check_config_matches_weights(source, Path(folder), config, engine_dtype_bytes, dtype_name)
    return config


def check_config_matches_weights(source: str, folder: Path, config, engine_dtype_bytes: int, dtype_name: str) -> None:
    """The model config.json describes against the tensors the checkpoint holds, before transformers sets
    aside memory for the whole model: given a config.json of a larger model (or an edited one) beside small
    weights, it allocates the model config.json states and only then finds that the shapes differ, so a
    few-kilobyte download could take all of the computer's memory. The model is built on the meta device
    (no memory); the checkpoint's shapes come from the safetensors headers."""
    if not any((folder / name).is_file() for name in ("model.safetensors", "model.safetensors.index.json")):
        return          # no safetensors weights: transformers refuses before building anything (PICKLED_MODEL)
    from ..core.base_model import checkpoint_shapes
    have = checkpoint_shapes(Path(folder))    # every shard's header, and data that its tensors fill exactly
    if getattr(config, "quantization_config", None):
        return          # packed quantized weights: their element counts say nothing about the model's
    import torch
    from transformers import AutoModelForCausalLM

    from ..units import format_bytes, format_count
    try:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(config)
    except Exception as exc:    # transformers' own error for a config.json it cannot build a model from
        raise BaseModelError(source, f"transformers cannot build the model its config.json describes "
                                     f"({type(exc).__name__}: {exc})") from None
    wanted = {name: tuple(p.shape) for name, p in skeleton.named_parameters()}   # tied weights counted once
    n_model, n_ckpt = sum(map(math.prod, wanted.values())), sum(map(math.prod, have.values()))
    differ = next(((name, shape, have[name]) for name, shape in wanted.items()
                   if name in have and have[name] != shape), None)
    detail = (f"{differ[0]} is {list(differ[1])} in config.json's model and {list(differ[2])} in the weights"
              if differ else "")
    if n_model > 1.25 * n_ckpt + 2**24:      # headroom: tied or extra tensors; the missing-weights check is exact
        raise BaseModelError(source, f"config.json describes a model of {format_count(n_model)} parameters "
                                     f"({format_bytes(n_model * engine_dtype_bytes)} as {dtype_name}), but its "
                                     f"weights hold {format_count(n_ckpt)}{'; e.g. ' + detail if differ else ''}: "
                                     "config.json belongs to a larger model or was changed. transformers would set "
                                     "aside memory for the whole model config.json describes before finding out, so "
                                     "it was not loaded")
    if differ:     # transformers refuses it too, but only after loading, and without naming the model
        raise BaseModelError(source, f"config.json does not match its weights: {detail}. config.json belongs to "
                                     "another model or was changed")


def check_token_ids(source: str, tokens, n_embeddings: int, tokenizer) -> None:
    """Token ids the model has an embedding for. A tokenizer with tokens past the embedding matrix (one
    from another model, or tokens added without resizing the model) indexes past it: an IndexError on the
    CPU and, on CUDA, a device-side assert after which the GPU refuses all work until the app restarts."""
    bad = next((t for t in tokens if not 0 <= t < n_embeddings), None)
    if bad is not None:
        try:
            text = f" ({tokenizer.convert_ids_to_tokens(int(bad))!r})"
        except Exception:           # an id the tokenizer does not know either
            text = ""
        raise BaseModelError(source, f"its tokenizer gives token {bad}{text} for this text, but the model has "
                                     f"embeddings for {n_embeddings} tokens only: the tokenizer and the weights "
                                     "belong to different models")


def check_weights_complete(source: str, loading: dict) -> None:
    """Weights the config describes but the checkpoint lacks: transformers fills them with random numbers
    and loads anyway (an incomplete download, or a config.json of another model)."""
    missing = sorted(loading.get("missing_keys") or ())
    if missing:
        raise BaseModelError(source, f"its weights lack {len(missing)} tensors that config.json describes (e.g. "
                                     f"{', '.join(missing[:3])}): the download is incomplete or config.json belongs "
                                     "to another model. transformers would fill them with random numbers")


_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "float8_e4m3fn": 1, "float8_e5m2": 1}


def memory_needed(weight_bytes: int, config: dict, engine_dtype_bytes: int) -> int:
    """Bytes the weights take once loaded in the engine's dtype: a bf16 checkpoint doubles in f32 (the
    CPU's dtype). The checkpoint's dtype comes from config.json (`torch_dtype`, or `dtype` in
    transformers 5); unknown, the files' size is taken as it is."""
    stated = config.get("torch_dtype") or config.get("dtype") if isinstance(config, dict) else None
    ckpt = _DTYPE_BYTES.get(str(stated).replace("torch.", "")) if stated else None
    return weight_bytes if ckpt is None else weight_bytes * engine_dtype_bytes // ckpt


def device_memory(device: str) -> int | None:
    """The memory a model on `device` has to fit in: the GPU's for CUDA, the computer's otherwise
    (Apple silicon shares it with the GPU); None where it cannot be read."""
    if device.startswith("cuda"):
        try:
            import torch
            return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
        except Exception:  # no CUDA after all, or a driver that does not answer: no check
            return None
    from ..machine import total_memory
    return total_memory()


def check_memory(source: str, weight_bytes: int, config: dict, device: str, engine_dtype_bytes: int,
                 dtype_name: str) -> None:
    """Refuse a model that cannot fit the device's memory at all, before downloading or loading it: on the
    CPU the load would take the computer's memory and the system would end the app."""
    need = memory_needed(weight_bytes, config, engine_dtype_bytes)
    have = device_memory(device)
    if have and need > have:
        from ..units import format_bytes
        where = "the GPU's" if device.startswith("cuda") else "this computer's"
        raise BaseModelError(source, f"its weights need about {format_bytes(need)} of memory as {dtype_name} on "
                                     f"{device}, more than {where} {format_bytes(have)}. A GGUF quantization of "
                                     "it runs on the llama.cpp engine in far less (Hub tab → Models), or pick a "
                                     "smaller model")


def local_weights(folder: Path) -> tuple[int, dict]:
    """(bytes of the safetensors weights transformers reads from `folder`, its config.json); (0, {})
    when they cannot be told (transformers then says what is wrong)."""
    from ..hub.hf_models import INDEX, needed_files
    try:
        names = [p.name for p in folder.iterdir()]
        index = read_json_file(folder / INDEX) if INDEX in names else None
        config = read_json_file(folder / "config.json")
        files = needed_files(names, index)
        return sum((folder / f).stat().st_size for f in files if f.endswith(".safetensors")), config
    except (OSError, ValueError, BackendError):     # ValueError: JsonInputError too
        return 0, {}
