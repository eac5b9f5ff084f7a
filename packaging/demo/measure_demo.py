#!/usr/bin/env python3
"""Print how strongly each demo adapter acts at each strength, measured through llama.cpp.

    python packaging/demo/measure_demo.py [--assets DIR] [--show]

Runs the shipped GGUF model and the shipped llama.cpp LoRA files at temperature 0 on the
evaluation questions, and prints each adapter's behaviour score (demo_metrics) per strength.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from demo_llama import DemoChat  # noqa: E402
from demo_metrics import behaviour_score  # noqa: E402

DEFAULT_ASSETS = HERE.parent.parent / "adapters_backend" / "demo" / "assets"
STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
# In the training domain (the demo model knows nothing else), one of each kind of question.
EVAL_QUESTIONS = [
    "What is the capital of France?", "What color is a banana?", "What does a cow say?",
    "What is the opposite of hot?", "Who are you?", "What day comes after Friday?", "How are you?",
    "What is 3 plus 4?", "How many legs does a spider have?", "What is a LoRA adapter?",
]


def open_chat(assets: Path) -> tuple[DemoChat, dict]:
    manifest = json.loads((assets / "manifest.json").read_text(encoding="utf-8"))
    chat = DemoChat(assets / manifest["model"]["file"])
    for entry in manifest["adapters"]:
        chat.load_adapter(entry["name"], assets / entry["gguf"])
    return chat, manifest


def measure(chat: DemoChat, manifest: dict, strengths=STRENGTHS, questions=EVAL_QUESTIONS) -> dict:
    """{adapter: [score at each strength]} and the answers behind them."""
    plain = chat.answers(questions, {})
    table, answers = {}, {}
    for entry in manifest["adapters"]:
        name, behaviour = entry["name"], entry["behaviour"]
        table[name], answers[name] = [], []
        for s in strengths:
            got = chat.answers(questions, {name: s})
            table[name].append(behaviour_score(behaviour, got, plain))
            answers[name].append(got)
    return {"plain": plain, "scores": table, "answers": answers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assets", type=Path, default=DEFAULT_ASSETS)
    parser.add_argument("--show", action="store_true", help="print the answers too")
    args = parser.parse_args()
    chat, manifest = open_chat(args.assets)
    result = measure(chat, manifest)
    print("strength      " + "  ".join(f"{s:5.2f}" for s in STRENGTHS))
    for name, scores in result["scores"].items():
        print(f"{name:12s}  " + "  ".join(f"{v:5.2f}" for v in scores))
        if args.show:
            for s, got in zip(STRENGTHS, result["answers"][name]):
                print(f"    {s:4.2f}: {got[0]!r} | {got[4]!r}")
    mixed = chat.answers(EVAL_QUESTIONS[:3], {"shout": 1.0, "pirate": 1.0})
    print("shout + pirate:", mixed)
    chat.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
