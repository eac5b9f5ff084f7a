"""Save a trained demo LoRA in the three adapter formats LoRA Deck reads.

* PEFT folder: ``adapter_config.json`` + ``adapter_model.safetensors`` (PEFT's own writer).
* Kohya single file: the PEFT keys renamed the way kohya-ss ``networks/lora.py`` names text-encoder
  modules (``lora_te_`` + module path with "_"), with ``lora_down``/``lora_up``/``alpha`` per module,
  F16 tensors and ``ss_*``/``modelspec.*`` metadata.
* Ludwig model folder: ``model_hyperparameters.json`` (the Ludwig LLM config) and
  ``training_set_metadata.json`` beside ``model_weights/``, which holds the PEFT save.

The LoRA factors are also returned as plain (A, B) pairs for the llama.cpp GGUF writer.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PEFT_PREFIX = "base_model.model."


def lora_pairs(peft_model, adapter: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """module name -> (A (r, in), B (out, r)) as float32 numpy, from the adapter's PEFT state dict."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(peft_model, adapter_name=adapter)
    pairs: dict[str, list] = {}
    for key, tensor in state.items():
        for role, slot in ((".lora_A.weight", 0), (".lora_B.weight", 1)):
            if key.endswith(role):
                module = key[len(PEFT_PREFIX): -len(role)]
                pairs.setdefault(module, [None, None])[slot] = tensor.detach().float().numpy()
    return {m: (a, b) for m, (a, b) in sorted(pairs.items())}


def _model_card(title: str, description: str, base_model: str) -> str:
    return (
        "---\n"
        f"base_model: {base_model}\n"
        "library_name: peft\n"
        "license: apache-2.0\n"
        "tags:\n- lora\n- loradeck-demo\n"
        "---\n\n"
        f"# {title}\n\n{description}\n\n"
        "A LoRA for LoRA Deck's tiny demo model, made by `packaging/demo/train_demo.py` from synthetic\n"
        "data. Weights and data are released under the Apache License 2.0.\n"
    )


def save_peft(peft_model, adapter: str, folder: Path, *, base_model: str, title: str, description: str) -> None:
    """PEFT's own writer. It puts a non-default adapter in a sub-folder named after it; move that."""
    import shutil
    import tempfile

    peft_model.peft_config[adapter].base_model_name_or_path = base_model
    with tempfile.TemporaryDirectory() as tmp:
        # save_embedding_layers=False: "auto" would look the base model id up on the Hub
        peft_model.save_pretrained(tmp, selected_adapters=[adapter], save_embedding_layers=False)
        saved = Path(tmp) / adapter if adapter != "default" else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for item in saved.iterdir():
            shutil.move(str(item), str(folder / item.name))
    # PEFT's default card is a long template; a short one says what the adapter is.
    (folder / "README.md").write_text(_model_card(title, description, base_model), encoding="utf-8")


def save_kohya(pairs: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float, path: Path, *,
               base_model: str, title: str, description: str) -> None:

    tensors: dict[str, np.ndarray] = {}
    rank = None
    for module, (a, b) in pairs.items():
        stem = "lora_te_" + module.replace(".", "_")
        tensors[stem + ".lora_down.weight"] = a.astype(np.float16)
        tensors[stem + ".lora_up.weight"] = b.astype(np.float16)
        tensors[stem + ".alpha"] = np.array(alpha, dtype=np.float16)  # 0-d, as kohya saves it
        rank = a.shape[0]
    metadata = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(float(alpha)),
        "ss_sd_model_name": base_model,
        "ss_output_name": path.stem,
        "ss_training_comment": description,
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "llama/lora",
        "modelspec.implementation": "loradeck-demo",
        "modelspec.title": title,
        "modelspec.author": "LoRA Deck project",
        "modelspec.description": description,
        "modelspec.license": "Apache-2.0",
    }
    _save_sorted(tensors, path, metadata)


def _save_sorted(tensors: dict[str, np.ndarray], path: Path, metadata: dict[str, str]) -> None:
    """A safetensors file with its header keys in sorted order. safetensors' own writer keeps the
    metadata in a hash map whose order changes from run to run, so the same adapter would not give the
    same bytes twice; the layout is the format's (8-byte length, JSON header, tensor data)."""
    import json
    import struct

    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    dtypes = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32"}
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        header[name] = {"dtype": dtypes[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        blobs.append(arr.tobytes())
        offset += arr.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def save_ludwig(peft_model, adapter: str, folder: Path, *, base_model: str, title: str, description: str,
                rank: int, alpha: float, steps: int, learning_rate: float, batch_size: int) -> None:
    weights = folder / "model_weights"
    weights.mkdir(parents=True, exist_ok=True)
    save_peft(peft_model, adapter, weights, base_model=base_model, title=title, description=description)
    config = {
        "model_type": "llm",
        "base_model": base_model,
        "input_features": [{"name": "instruction", "type": "text"}],
        "output_features": [{"name": "response", "type": "text"}],
        "prompt": {"template": None},
        "adapter": {
            "type": "lora", "r": rank, "alpha": alpha, "dropout": 0.0, "bias_type": "none",
            "target_modules": sorted(peft_model.peft_config[adapter].target_modules),
            "use_rslora": False, "use_dora": False, "pretrained_adapter_weights": None,
        },
        "quantization": None,
        "generation": {"max_new_tokens": 64, "temperature": 0.0},
        "trainer": {"type": "finetune", "optimizer": {"type": "adamw"}, "learning_rate": learning_rate,
                    "batch_size": batch_size, "train_steps": steps},
        "ludwig_version": "0.17.8",
        "description": description,
    }
    (folder / "model_hyperparameters.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (folder / "training_set_metadata.json").write_text(
        json.dumps({"instruction": {}, "response": {}, "note": "synthetic data, see packaging/demo"}, indent=2)
        + "\n", encoding="utf-8")
