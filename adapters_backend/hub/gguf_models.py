"""The models a GGUF repository offers: its .gguf files, with the parts of a split model taken as one.

A large model is published in parts (PREFIX-00001-of-00003.gguf …), which llama.cpp opens from the
first one; downloading only the file a person picked would leave a model that cannot load. So a
repository's files become *models*: one per single file, one per split whose every part is listed
(named by its first part, with all its parts and their total size). Projector files (`mmproj`, the
image half of a vision model) are not models on their own and are left out.

`suggested_model` picks what a person without an opinion should download: Q4_K_M (the usual
balance of size and quality) if it fits this computer's memory, else the largest that fits, else the
smallest.
"""
from __future__ import annotations

import re
from pathlib import PurePosixPath

from ..machine import fits_memory

_PART = re.compile(r"(.+)-(\d{5})-of-(\d{5})\.gguf", re.IGNORECASE)
_QUANT = re.compile(r"(?<![A-Za-z0-9])(I?Q\d(?:_[A-Z0-9]+)*|F16|F32|BF16)(?![A-Za-z0-9])", re.IGNORECASE)
PREFERRED_QUANT = "Q4_K_M"


def quant_of(filename: str) -> str | None:
    """"Q4_K_M" from "model-Q4_K_M.gguf" (None if the name does not say)."""
    found = _QUANT.findall(PurePosixPath(filename).stem)      # the last match: "…-Q4_K_M" after "Q8" in a name
    return found[-1].upper() if found else None


def gguf_models(files: list[dict]) -> list[dict]:
    """`files` ({"name", "size"}) → models {"name", "parts", "size", "quant"}, smallest first."""
    singles, splits = [], {}
    for f in files:
        name = f["name"]
        if not name.lower().endswith(".gguf") or "mmproj" in PurePosixPath(name).name.lower():
            continue
        m = _PART.fullmatch(name)
        if m is None:
            singles.append({"name": name, "parts": [name], "size": f.get("size"), "quant": quant_of(name)})
        else:
            splits.setdefault((m[1], int(m[3])), {})[int(m[2])] = f
    models = list(singles)
    for (prefix, count), parts in splits.items():
        if sorted(parts) != list(range(1, count + 1)):          # a part is missing: it cannot load
            continue
        names = [parts[i]["name"] for i in range(1, count + 1)]
        sizes = [parts[i].get("size") for i in range(1, count + 1)]
        models.append({"name": names[0], "parts": names, "quant": quant_of(f"{prefix}.gguf"),
                       "size": sum(sizes) if all(isinstance(s, int) for s in sizes) else None})
    return sorted(models, key=lambda m: (m["size"] or 0, m["name"]))


def suggested_model(models: list[dict], total: int | None) -> dict | None:
    """The model to offer first on a computer with `total` bytes of memory (None: unknown)."""
    if not models:
        return None
    fitting = [m for m in models if fits_memory(m["size"] or 0, total)]
    preferred = [m for m in fitting if (m["quant"] or "").upper() == PREFERRED_QUANT]
    if preferred:
        return preferred[0]
    return fitting[-1] if fitting and total else (fitting[0] if fitting else models[0])
