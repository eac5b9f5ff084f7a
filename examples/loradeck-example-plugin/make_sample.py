"""Write a small Simple LoRA adapter that fits LoRA Deck's built-in demo model.

    python make_sample.py [OUT_DIR]          (default: ./sample-simple-lora)

The demo model is a 4-layer Llama with hidden size 128, so this adapts q_proj and v_proj
(128 x 128) in every layer with rank 4. alpha 8 with rsLoRA gives scale 8 / sqrt(4) = 4;
layer 3's v_proj overrides alpha to 2 (scale 1). The numbers are random: loading it changes
the demo's answers, it does not teach anything.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

RANK, HIDDEN, LAYERS = 4, 128, 4


def make(out: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for layer in range(LAYERS):
        for proj in ("q_proj", "v_proj"):
            name = f"model.layers.{layer}.self_attn.{proj}"
            tensors[f"{name}.down"] = (rng.standard_normal((RANK, HIDDEN)) * 0.02).astype(np.float32)
            tensors[f"{name}.up"] = (rng.standard_normal((HIDDEN, RANK)) * 0.02).astype(np.float32)
    save_file(tensors, str(out / "simple_lora.safetensors"))
    config = {
        "simple_lora": 1,
        "base_model": "loradeck/tiny-deck-demo",
        "architecture": "llama",
        "alpha": 8,
        "rslora": True,
        "alphas": {"model.layers.3.self_attn.v_proj": 2},
    }
    (out / "simple_lora.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


if __name__ == "__main__":
    target = make(Path(sys.argv[1] if len(sys.argv) > 1 else "sample-simple-lora"))
    print(f"wrote {target}")
