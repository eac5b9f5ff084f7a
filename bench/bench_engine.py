"""Benchmark the llama.cpp engine: decode speed with adapters, and hot switch vs cold load.

On a ~100M-parameter f16 Llama (random weights, made here with gguf-py, real 32k SentencePiece
vocabulary) and rank-16 LoRAs on every linear layer, side by side in one run:

    base                      no adapter
    1 adapter                 one runtime adapter
    4 adapters, separate      four runtime adapters, each with its own scale
    4 adapters, fused         the engine's settled-mix form: one adapter, factors stacked (rank 64)
    merged                    the same 4-adapter mix merged into the weights (a separate f16 GGUF)

Decode tokens/s comes from the engine's own figure (first to last generated token, prompt excluded),
greedy, 128 tokens, median over interleaved rounds. Hot switch = `set_adapters` with new strengths
on a model with 4 adapters loaded; cold load = loading the model from disk into a new engine.

    python bench/bench_engine.py [--threads 2] [--rounds 5] [--tokens 128] [--layers 8]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from make_bench_model import LINEARS, write_llama, write_lora  # bench/, the script's folder, is on sys.path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VOCAB = REPO / ".cache" / "llama.cpp" / "models" / "ggml-vocab-llama-spm.gguf"
STRENGTHS = (0.8, -0.5, 0.6, 0.3)
CHAT_TEMPLATE = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n"
                 "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
GOALS = {"1 adapter": 0.83, "4 adapters, fused": 0.80, "merged": 0.98}


def base_weights(dim, layers, ff, vocab, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def rand(rows, cols, gain=1.0):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * (gain / np.sqrt(cols))).astype(np.float16)

    w = {"token_embd.weight": rand(vocab, dim, np.sqrt(dim)), "output_norm.weight": np.ones(dim, np.float32),
         "output.weight": rand(vocab, dim, 3.0)}
    for i in range(layers):
        w[f"blk.{i}.attn_norm.weight"] = np.ones(dim, np.float32)
        w[f"blk.{i}.ffn_norm.weight"] = np.ones(dim, np.float32)
        for name, shape in LINEARS.items():
            w[f"blk.{i}.{name}.weight"] = rand(*shape(dim, ff))
    return w


def write_model(path: Path, weights, dim, layers, ff, heads, context_length: int = 2048) -> Path:
    return write_llama(path, weights, dim=dim, layers=layers, ff=ff, heads=heads, tokenizer_from=VOCAB,
                       name="LoRA Deck engine benchmark (random weights)", context_length=context_length,
                       chat_template=CHAT_TEMPLATE)


def make_lora(dim, layers, ff, rank, seed):
    rng = np.random.default_rng(seed)
    pairs = {}
    for i in range(layers):
        for name, shape in LINEARS.items():
            rows, cols = shape(dim, ff)
            pairs[f"blk.{i}.{name}.weight"] = ((rng.standard_normal((rank, cols)) / np.sqrt(cols)).astype(np.float32),
                                               (rng.standard_normal((rows, rank)) * 0.3 / np.sqrt(rank)).astype(np.float32))
    return pairs


def build_files(folder: Path, dim, layers, ff, heads, rank, lora_dtype):
    folder.mkdir(parents=True, exist_ok=True)
    import gguf
    vocab = len(gguf.GGUFReader(VOCAB).fields["tokenizer.ggml.tokens"].data)
    tag = f"d{dim}-l{layers}-f{ff}-h{heads}-r{rank}-{lora_dtype}"
    model, merged = folder / f"base-{tag}.gguf", folder / f"merged-{tag}.gguf"
    loras = [folder / f"lora{i}-{tag}.gguf" for i in range(4)]
    if all(p.exists() for p in (model, merged, *loras)):
        return model, merged, loras
    print("writing the benchmark model and adapters …", flush=True)
    w = base_weights(dim, layers, ff, vocab)
    write_model(model, w, dim, layers, ff, heads)
    for i, path in enumerate(loras):
        pairs = make_lora(dim, layers, ff, rank, seed=10 + i)
        write_lora(path, pairs, np.float16 if lora_dtype == "f16" else np.float32)
        for name, (a, b) in pairs.items():
            w[name] = (w[name].astype(np.float32) + STRENGTHS[i] * (b @ a)).astype(np.float16)
    write_model(merged, w, dim, layers, ff, heads)
    return model, merged, loras


def decode_tps(engine, tokens: int) -> float:
    from adapters_backend.engines.base import ChatMessage, SamplingParams
    msgs = [ChatMessage("user", "Write a long story about a lighthouse keeper and the sea.")]
    *_, last = engine.generate(msgs, SamplingParams(max_tokens=tokens, temperature=0.0, repeat_penalty=1.0))
    if last.completion_tokens < tokens // 2:
        print(f"  (note: reply ended after {last.completion_tokens} tokens)")
    return float(last.tokens_per_second)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--ff", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--lora-dtype", choices=("f32", "f16"), default="f32")
    ap.add_argument("--folder", type=Path, default=None, help="where the model files go (default: cache)")
    args = ap.parse_args()
    if not VOCAB.exists():
        print(f"missing {VOCAB}; run `python3 dev.py test` once to fetch llama.cpp's sources", file=sys.stderr)
        return 2

    from adapters_backend.engines.base import ActiveAdapter
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    from adapters_backend.paths import cache_dir

    folder = args.folder or cache_dir() / "bench-engine"
    model, merged, loras = build_files(folder, args.dim, args.layers, args.ff, args.heads, args.rank, args.lora_dtype)
    opts = dict(n_ctx=1024, n_threads=args.threads, n_threads_batch=args.threads)

    # Cold load: a new engine loading the model from disk (page cache warm, as on a second start).
    cold = []
    for _ in range(3):
        e = LlamaCppEngine(**opts)
        t0 = time.perf_counter()
        info = e.load(model)
        cold.append(time.perf_counter() - t0)
        e.close()
    print(f"model: {info['n_params'] / 1e6:.0f}M parameters, f16, {args.layers} layers, dim {args.dim}; "
          f"adapters: rank {args.rank} on all {7 * args.layers} linears, {args.lora_dtype}; {args.threads} threads")

    separate = LlamaCppEngine(**opts, fuse_mixes=False)
    separate.load(model)
    fused = LlamaCppEngine(**opts, fuse_mixes=True)
    fused.load(model)
    merged_engine = LlamaCppEngine(**opts, fuse_mixes=False)
    merged_engine.load(merged)
    mix4 = [ActiveAdapter(p, s) for p, s in zip(loras, STRENGTHS)]
    t0 = time.perf_counter()
    fused.set_adapters(mix4)
    adapter_cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert fused.fuse_now(timeout=300) and fused.mode == "fused"
    fuse_seconds = time.perf_counter() - t0

    configs = {
        "base": (separate, []),
        "1 adapter": (separate, mix4[:1]),
        "4 adapters, separate": (separate, mix4),
        "4 adapters, fused": (fused, None),
        "merged": (merged_engine, []),
    }
    results: dict[str, list[float]] = {k: [] for k in configs}
    for engine, mix in configs.values():                   # warm-up
        if mix is not None:
            engine.set_adapters(mix)
        decode_tps(engine, 16)
    for r in range(args.rounds):
        for name, (engine, mix) in configs.items():
            if mix is not None:
                engine.set_adapters(mix)
            results[name].append(decode_tps(engine, args.tokens))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in results.items()), flush=True)
    assert fused.mode == "fused"

    # Hot switch: new strengths for the 4 loaded adapters (the next token already uses them).
    hot = []
    for i in range(50):
        mix = [ActiveAdapter(a.path, s * (0.5 + (i % 5) / 10)) for a, s in zip(mix4, STRENGTHS)]
        t0 = time.perf_counter()
        separate.set_adapters(mix)
        hot.append(time.perf_counter() - t0)

    med = {k: statistics.median(v) for k, v in results.items()}
    base = med["base"]
    print(f"\ndecode tokens/s (median of {args.rounds}, {args.tokens} tokens, greedy):")
    for k, v in med.items():
        goal = GOALS.get(k)
        mark = "" if goal is None else ("  goal ≥ %.2f: %s" % (goal, "met" if v / base >= goal else "NOT met"))
        print(f"  {k:<22} {v:8.1f}   {v / base:5.2f}× base{mark}")
    h, c = statistics.median(hot), statistics.median(cold)
    print(f"\nhot switch (set_adapters, 4 adapters, new strengths): {h * 1e3:.3f} ms")
    print(f"cold model load:                                     {c * 1e3:.1f} ms")
    print(f"hot switch ÷ cold load = {h / c:.5f}  (goal ≤ 0.01: {'met' if h / c <= 0.01 else 'NOT met'})")
    print(f"first load of the 4 adapter files: {adapter_cold * 1e3:.1f} ms; building + loading the fused file: "
          f"{fuse_seconds * 1e3:.0f} ms")
    for e in (separate, fused, merged_engine):
        e.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
