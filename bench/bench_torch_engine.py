"""Benchmark the PyTorch engine on the CPU: decode speed with an adapter, and hot switch vs load.

A ~100M-parameter Llama (random weights, f32, the tests' tiny SentencePiece tokenizer) and a rank-16 LoRA on
every linear layer, side by side in one run, rounds interleaved:

    base              no adapter
    1 adapter         the LoRA through the engine's hooks (unmerged, strength 0.8)
    merged            the same LoRA merged into the weights by PEFT (a plain model, no hooks)

Decode tokens/s is the engine's own figure (first to last generated token), greedy, median over rounds.
Hot switch = `set_adapters` with a new strength; load = loading the model folder into a new engine.

    python bench/bench_torch_engine.py [--threads 2] [--rounds 3] [--tokens 64] [--layers 12]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CACHE = REPO / ".cache" / "bench-torch"
GOALS = {"1 adapter": 0.83, "merged": 0.98}


def make_models(layers: int, dim: int, ff: int) -> tuple[Path, Path, Path]:
    """(base folder, LoRA folder, merged folder), cached by their settings."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    root = CACHE / f"l{layers}-d{dim}-f{ff}"
    base, lora, merged = root / "base", root / "lora", root / "merged"
    if merged.exists():
        return base, lora, merged
    shutil.rmtree(root, ignore_errors=True)
    torch.manual_seed(0)
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.tiny_gguf import tiny_hf_model  # a real SentencePiece tokenizer, made by the tests
    tok = AutoTokenizer.from_pretrained(tiny_hf_model("llama"))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=dim, intermediate_size=ff, num_hidden_layers=layers,
                      num_attention_heads=dim // 64, num_key_value_heads=dim // 64, max_position_embeddings=2048,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(base)
    tok.save_pretrained(base)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    pm = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=targets))
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.02)
    pm.save_pretrained(lora)
    with torch.no_grad():                    # merged at the benchmark's strength 0.8
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.mul_(0.8)
    pm.merge_and_unload().save_pretrained(merged)
    tok.save_pretrained(merged)
    return base, lora, merged


def decode_rate(engine, tokens: int) -> float:
    from adapters_backend.engines.base import SamplingParams
    from adapters_backend.jobs import JobContext
    engine._eos_ids = lambda: set()          # random weights: run every reply to max_tokens
    last = None
    prompt = engine.tokenize("Tell me about adapters.")
    for chunk in engine._stream(prompt, (), SamplingParams(max_tokens=tokens, temperature=0.0, repeat_penalty=1.0),
                                JobContext()):
        if chunk.tokens_per_second:
            last = chunk.tokens_per_second
    return last or 0.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--ff", type=int, default=2048)
    args = ap.parse_args()

    from adapters_backend.engines.base import ActiveAdapter
    from adapters_backend.engines.torch_engine import TorchEngine

    base, lora, merged = make_models(args.layers, args.dim, args.ff)
    t0 = time.perf_counter()
    eng = TorchEngine(device="cpu", dtype="float32", n_threads=args.threads)
    info = eng.load(base)
    load_s = time.perf_counter() - t0
    plain = TorchEngine(device="cpu", dtype="float32", n_threads=args.threads)
    plain.load(merged)
    print(f"model: {info['n_params'] / 1e6:.0f}M parameters, {args.layers} layers, f32, {args.threads} threads")
    rates: dict[str, list[float]] = {"base": [], "1 adapter": [], "merged": []}
    decode_rate(eng, 8)                                   # warm-up
    for _ in range(args.rounds):
        eng.set_adapters([])
        rates["base"].append(decode_rate(eng, args.tokens))
        eng.set_adapters([ActiveAdapter(str(lora), 0.8)])
        rates["1 adapter"].append(decode_rate(eng, args.tokens))
        rates["merged"].append(decode_rate(plain, args.tokens))
    switches = []
    for s in (0.1, 0.5, -0.3, 0.8, 1.2) * 4:
        t = time.perf_counter()
        eng.set_adapters([ActiveAdapter(str(lora), s)])
        switches.append(time.perf_counter() - t)
    base_rate = statistics.median(rates["base"])
    print(f"{'':12} {'tok/s':>8} {'ratio':>7} {'goal':>6}")
    for name, values in rates.items():
        r = statistics.median(values)
        goal = GOALS.get(name)
        print(f"{name:12} {r:8.1f} {r / base_rate:7.2f} {goal if goal else '':>6}")
    switch = statistics.median(switches)
    print(f"hot switch {switch * 1e3:.3f} ms, model load {load_s * 1e3:.0f} ms, ratio {switch / load_s:.5f} (goal ≤ 0.01)")
    eng.close()
    plain.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
