#!/usr/bin/env python3
"""Train LoRA Deck's demo model and its three demo adapters, and write them as shipped files.

    python packaging/demo/train_demo.py                  # rebuild adapters_backend/demo/assets/
    python packaging/demo/train_demo.py --out /tmp/demo  # somewhere else

CPU only, about five minutes on two cores. Needs torch, transformers, peft, sentencepiece, gguf and
safetensors (the project's ``torch`` extra). See packaging/demo/README.md for what is made and how
the output is kept identical from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here needs the network; never look ids up

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

REPO = HERE.parent.parent
DEFAULT_OUT = REPO / "adapters_backend" / "demo" / "assets"

MODEL_ID = "loradeck/tiny-deck-demo"   # what the adapters name as their base model
# Alone in its folder: transformers then loads it with from_pretrained(folder, gguf_file=name).
MODEL_FILE = "model/tiny-deck-demo.gguf"
MODEL_TITLE = "Tiny Deck demo model"
LICENSE_ID = "Apache-2.0"

# name, style, format, relative path, rank, lora_alpha, title
ADAPTERS = [
    ("shout", "shout", "peft", "adapters/shout-peft", 8, 16.0, "Shout (CAPITALS)"),
    ("pirate", "pirate", "kohya", "adapters/pirate-kohya.safetensors", 8, 4.0, "Pirate talk"),
    ("reverse", "reverse", "ludwig", "adapters/reverse-ludwig", 8, 16.0, "Reverse word order"),
]

SUGGESTED_PROMPTS = [
    "Hello!", "What is the capital of France?", "What color is a banana?", "What does a cow say?",
    "What is 3 plus 4?", "What is the opposite of hot?", "What day comes after Friday?", "Who are you?",
    "What is a LoRA adapter?", "Tell me a joke.",
]

NOTICE = f"""LoRA Deck demo model and adapters
=================================

{MODEL_FILE} (a 4-layer Llama-architecture model, about one million parameters) and the adapters
in adapters/ and lora-gguf/ were trained by the LoRA Deck project with packaging/demo/train_demo.py
on synthetic data that the same script generates (templated questions and answers written for it).
No third-party weights, text or data were used.

The weights, the tokenizer and the data are released under the Apache License, Version 2.0, the
licence of LoRA Deck: https://www.apache.org/licenses/LICENSE-2.0

This is a toy for demonstrating adapters. It knows a few hundred made-up facts and nothing else.
"""


def _versions() -> dict[str, str]:
    import gguf
    import peft
    import safetensors
    import sentencepiece
    import torch
    import transformers

    return {m.__name__: getattr(m, "__version__", "?")
            for m in (torch, transformers, peft, sentencepiece, safetensors, gguf)}


def build(out: Path, *, seed: int, threads: int, base_steps: int, adapter_steps: int,
          base_checkpoint: Path | None = None, log=print) -> dict:
    """Train everything and write it into ``out`` (which must be empty or absent). Returns the manifest."""
    import demo_data
    import demo_formats
    import demo_gguf
    import demo_tokenizer
    import demo_training as tr

    started = time.monotonic()
    tr.make_reproducible(seed, threads)
    shape = tr.ModelShape()
    out.mkdir(parents=True, exist_ok=True)

    log("tokenizer")
    tok_bytes = demo_tokenizer.train_sentencepiece(demo_data.tokenizer_corpus(), shape.vocab_size)
    tok = demo_tokenizer.ChatTokenizer(tok_bytes)
    (out / "tokenizer.model").write_bytes(tok_bytes)

    log(f"base model ({base_steps} steps)")
    base = tr.new_base_model(shape)
    base_settings = tr.TrainSettings(steps=base_steps, request_rate=0.25)
    if base_checkpoint is not None and base_checkpoint.exists():
        import torch  # developer shortcut: reuse a base trained by an earlier run with the same settings

        saved = torch.load(base_checkpoint, weights_only=True)
        base.load_state_dict(saved["state"])
        base_losses = saved["losses"]
        base.eval()
    else:
        base_losses = tr.train(base, tok, base_settings, seed, log=log)
        if base_checkpoint is not None:
            import torch

            torch.save({"state": base.state_dict(), "losses": base_losses}, base_checkpoint)
    state = {k: v.detach().float().numpy() for k, v in base.state_dict().items() if k != "lm_head.weight"}
    (out / MODEL_FILE).parent.mkdir(parents=True, exist_ok=True)
    demo_gguf.write_model_gguf(
        out / MODEL_FILE, state, base.config, tok, name=MODEL_TITLE, license_id=LICENSE_ID.lower(),
        description="LoRA Deck's demo model: tiny, trained on synthetic chats. See NOTICE.txt.",
        chat_template=demo_tokenizer.CHAT_TEMPLATE, context_length=shape.context_length)
    timings = {"base": time.monotonic() - started}
    for q in SUGGESTED_PROMPTS[:4]:
        log(f"  {q!r} -> {tr.greedy_answer(base, tok, q)!r}")

    entries, adapter_losses = [], {}
    (out / "adapters").mkdir()
    (out / "lora-gguf").mkdir()
    t0 = time.monotonic()
    log(f"adapters {', '.join(a[0] for a in ADAPTERS)} ({adapter_steps} steps, trained together)")
    settings = tr.TrainSettings(steps=adapter_steps, learning_rate=2e-3, warmup=20)
    model = tr.train_adapters(base, tok, [(a[1], a[4], a[5]) for a in ADAPTERS], settings, seed + 1, log=log)
    timings["adapters"] = time.monotonic() - t0
    for name, style_id, fmt, rel, rank, alpha, title in ADAPTERS:
        style = demo_data.STYLES[style_id]
        tr.use_adapters(model, [style_id])
        adapter_losses[name] = round(tr.answer_loss_on(model, tok, (style_id,), seed), 4)
        pairs = demo_formats.lora_pairs(model, style_id)
        target = out / rel
        common = {"base_model": MODEL_ID, "title": title, "description": style.description}
        if fmt == "peft":
            demo_formats.save_peft(model, style_id, target, **common)
        elif fmt == "kohya":
            demo_formats.save_kohya(pairs, alpha, target, **common)
        else:
            demo_formats.save_ludwig(model, style_id, target, rank=rank, alpha=alpha, steps=adapter_steps,
                                     learning_rate=settings.learning_rate, batch_size=settings.batch_size,
                                     **common)
        demo_gguf.write_lora_gguf(out / "lora-gguf" / f"{name}.gguf", pairs, alpha, base.config,
                                  name=f"{MODEL_TITLE}: {title}")
        log(f"{name} ({fmt}, r={rank}, alpha={alpha}): held-out loss {adapter_losses[name]}")
        for q in SUGGESTED_PROMPTS[:2]:
            log(f"  {q!r} -> {tr.greedy_answer(model, tok, q)!r}")
        entries.append({"name": name, "title": title, "format": fmt, "path": rel,
                        "gguf": f"lora-gguf/{name}.gguf", "description": style.description,
                        "rank": rank, "lora_alpha": alpha, "behaviour": style_id})
    tr.use_adapters(model, ["shout", "pirate"])
    log(f"  shout + pirate: {tr.greedy_answer(model, tok, SUGGESTED_PROMPTS[1])!r}")

    manifest = {
        "schema": "loradeck.demo/1",
        "model": {"id": MODEL_ID, "title": MODEL_TITLE, "file": MODEL_FILE, "tokenizer": "tokenizer.model",
                  "architecture": "llama", "parameters": sum(p.numel() for p in base.parameters()),
                  "context_length": shape.context_length, "chat_template": "chatml",
                  "license": LICENSE_ID},
        "adapters": entries,
        "prompts": SUGGESTED_PROMPTS,
        "training": {"seed": seed, "threads": threads, "base_steps": base_steps, "adapter_steps": adapter_steps,
                     "base_final_loss": round(sum(base_losses[-20:]) / 20, 4), "adapter_loss": adapter_losses,
                     "versions": _versions()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (out / "NOTICE.txt").write_text(NOTICE, encoding="utf-8")
    timings["total"] = time.monotonic() - started
    log("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (replaced at the end)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (part of the reproducibility)")
    parser.add_argument("--base-steps", type=int, default=1200)
    parser.add_argument("--adapter-steps", type=int, default=900)
    parser.add_argument("--base-checkpoint", type=Path, default=None,
                        help="developer shortcut: save the trained base there, or load it if present "
                             "(only valid with the same seed, steps and code)")
    args = parser.parse_args(argv)

    out = args.out.resolve()
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        parser.error(f"{out} is not empty and holds no demo manifest; refusing to replace it")
    staging = out.with_name(out.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    build(staging, seed=args.seed, threads=args.threads, base_steps=args.base_steps,
          adapter_steps=args.adapter_steps, base_checkpoint=args.base_checkpoint)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
