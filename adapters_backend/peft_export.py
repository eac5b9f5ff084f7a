"""Write any canonical adapter as a PEFT LoRA folder (for engines and tools that speak PEFT).

Every low-rank variant (LoRA, rsLoRA, patterns, AdaLoRA, LoHa, LoKr, Kohya/LyCORIS) is written as an
exact LoRA pair with its scale folded into B, so each module's PEFT scale is 1 (lora_alpha = r per
module through rank_pattern/alpha_pattern). Row-axis DoRA keeps its magnitude vector (PEFT DoRA).
Replacement tensors (modules_to_save, biases) and column-axis DoRA cannot be a PEFT LoRA; they are
skipped and named in the returned warnings.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from .adapter import Adapter
from .errors import AdapterFormatError


def export_peft(adapter: Adapter, out_dir: Path, base_model: str | None = None) -> list[str]:
    """Write `adapter` as a PEFT LoRA folder at `out_dir` (atomically). Returns warnings."""
    from .variants import lowrank  # the variant math

    out_dir = Path(out_dir)
    warnings: list[str] = []
    tensors: dict[str, np.ndarray] = {}
    ranks: dict[str, int] = {}
    embeddings: list[str] = []
    dora = False
    for mod in adapter:
        t = adapter.tensors(mod)
        if mod.variant == "dora":
            if mod.dora_axis != "row":
                warnings.append(f"{mod.name}: column-axis DoRA has no PEFT equivalent; skipped")
                continue
            a, b, m = t["A"], t["B"] * np.float32(mod.scale), t["magnitude"].reshape(-1)
            tensors[f"base_model.model.{mod.name}.lora_magnitude_vector"] = m
            dora = True
        elif mod.is_low_rank:
            a, b = lowrank(mod, t)
        else:
            warnings.append(f"{mod.name}: {mod.variant} tensors are not a LoRA update; skipped")
            continue
        if mod.variant == "embedding":
            # lowrank gives ΔE = B·A with ΔE (vocab, dim); PEFT stores lora_embedding_A (r, vocab),
            # lora_embedding_B (dim, r) with ΔE = (B_p·A_p)ᵀ, so A_p = Bᵀ and B_p = Aᵀ.
            tensors[f"base_model.model.{mod.name}.lora_embedding_A"] = np.ascontiguousarray(b.T)
            tensors[f"base_model.model.{mod.name}.lora_embedding_B"] = np.ascontiguousarray(a.T)
            embeddings.append(mod.name)
        else:
            tensors[f"base_model.model.{mod.name}.lora_A.weight"] = np.ascontiguousarray(a)
            tensors[f"base_model.model.{mod.name}.lora_B.weight"] = np.ascontiguousarray(b)
        ranks[mod.name] = int(a.shape[0])
    if not ranks:
        raise AdapterFormatError(adapter.path, "nothing in this adapter can be expressed as a PEFT LoRA")
    if dora and len({m.variant for m in adapter if m.name in ranks}) > 1:
        raise AdapterFormatError(adapter.path, "mixes DoRA and non-DoRA modules; PEFT needs one use_dora setting")
    r = Counter(ranks.values()).most_common(1)[0][0]
    # Patterns are regexes matched with re.match(rf"(.*\.)?({key})$", name): escape full names.
    pattern = {re.escape(name): rk for name, rk in ranks.items() if rk != r}
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model or adapter.base_model,
        "r": r, "lora_alpha": r, "lora_dropout": 0.0, "use_rslora": False, "use_dora": dora,
        "target_modules": sorted(ranks), "rank_pattern": pattern, "alpha_pattern": dict(pattern),
        "fan_in_fan_out": any(m.fan_in_fan_out for m in adapter if m.name in ranks),
        "bias": "none", "modules_to_save": None, "init_lora_weights": True, "inference_mode": True,
    }
    from safetensors.numpy import save_file

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".peft-", dir=out_dir.parent))
    try:
        save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(staging / "adapter_model.safetensors"))
        (staging / "adapter_config.json").write_text(json.dumps(config, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return warnings
