"""The demo that ships with LoRA Deck: a tiny GGUF chat model and three LoRA adapters for it.

They let a new user chat and move strength sliders offline, before downloading anything. The files
live in ``assets/`` (installed with the package) and are made by
``packaging/demo/train_demo.py``; ``assets/manifest.json`` describes them.

Adapters, one per format LoRA Deck reads:

=========  ======  ===========================================================
name       format  behaviour (measurable, grows with the strength)
=========  ======  ===========================================================
shout      peft    answers in CAPITAL LETTERS
pirate     kohya   talks like a pirate ("Arr! ... be Paris, matey!")
reverse    ludwig  writes the words of each sentence in reverse order
=========  ======  ===========================================================
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from adapters_backend.errors import BaseModelError

DEMO_ASSETS = Path(__file__).resolve().with_name("assets")

DEMO_NOTE = (
    "This is LoRA Deck's tiny demo model (about one million parameters, trained on a few hundred "
    "made-up facts), so it only answers simple questions. Move an adapter's strength slider to see "
    "the adapter act. For real conversations, add a GGUF model from the Hugging Face Hub or from "
    "your disk in the model library."
)


# The provenance of the demo adapters in the library (registered on the app's first run).
DEMO_SOURCE = "built-in demo"
# Where the demo adapters lie in an installed copy, now and before the backend's folders were regrouped.
_ASSET_DIRS = ("/adapters_backend/demo/assets/", "/adapters_backend/demo_assets/")


def is_demo_source(source: str) -> bool:
    """True for the demo adapters' provenance, including the "local:<demo assets path>" that libraries
    made before DEMO_SOURCE recorded for them."""
    if source == DEMO_SOURCE:
        return True
    path = source.removeprefix("local:").replace("\\", "/")
    return source.startswith("local:") and any(d in path for d in _ASSET_DIRS)


class DemoAdapter(NamedTuple):
    name: str          # "shout", "pirate", "reverse"
    path: Path         # PEFT folder, Kohya .safetensors or Ludwig model folder
    format: str        # the format plugin id: "peft", "kohya", "ludwig"
    description: str


@lru_cache(maxsize=1)
def demo_manifest() -> dict:
    """The parsed ``assets/manifest.json``."""
    path = DEMO_ASSETS / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BaseModelError(path, f"the demo files are missing or damaged ({exc}); reinstall LoRA Deck "
                                   "or run packaging/demo/train_demo.py") from exc


def _existing(rel: str) -> Path:
    path = DEMO_ASSETS / rel
    if not path.exists():
        raise BaseModelError(path, "demo file missing; reinstall LoRA Deck or run packaging/demo/train_demo.py")
    return path


def demo_model_path() -> Path:
    """The demo GGUF model (tokenizer and ChatML chat template inside)."""
    return _existing(demo_manifest()["model"]["file"])


def demo_model_id() -> str:
    """The base-model id the demo adapters declare (``base_model_name_or_path`` etc.)."""
    return demo_manifest()["model"]["id"]


def demo_adapters() -> list[DemoAdapter]:
    """The three demo adapters in their original formats, in display order."""
    return [DemoAdapter(a["name"], _existing(a["path"]), a["format"], a["description"])
            for a in demo_manifest()["adapters"]]


def demo_lora_gguf(name: str) -> Path:
    """The same adapter already converted to a llama.cpp LoRA GGUF (F16), made at build time."""
    for entry in demo_manifest()["adapters"]:
        if entry["name"] == name:
            return _existing(entry["gguf"])
    raise KeyError(f"no demo adapter named {name!r}")


def demo_prompts() -> list[str]:
    """Questions the demo model can answer, for the chat's suggestions."""
    return list(demo_manifest()["prompts"])


def is_demo_model(path: str | Path) -> bool:
    """True if ``path`` is the bundled demo model (e.g. to show ``DEMO_NOTE``)."""
    try:
        return Path(path).resolve() == demo_model_path().resolve()
    except (OSError, BaseModelError):
        return False
