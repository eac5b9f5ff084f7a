"""A random-weight Llama GGUF of realistic size (~86M parameters, f16) and a rank-16 LoRA for it.

The demo model is so small (≈4,000 tokens/s, replies of ~25 tokens) that per-request overheads
dominate any speed ratio; a model with real matrix sizes gives the streaming benchmark honest
numbers. Random weights never converge on an end-of-text token, so every reply runs to max_tokens.
The tokenizer and chat template are copied from the demo model. Files are cached by their settings.

    python bench/make_bench_model.py [--dim 768] [--layers 12] [--ff 2048]   # prints the two paths
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LINEARS = {  # GGUF tensor → (rows, cols) as functions of (dim, ff)
    "attn_q": lambda d, f: (d, d), "attn_k": lambda d, f: (d, d), "attn_v": lambda d, f: (d, d),
    "attn_output": lambda d, f: (d, d), "ffn_gate": lambda d, f: (f, d), "ffn_up": lambda d, f: (f, d),
    "ffn_down": lambda d, f: (d, f),
}


def _copy_tokenizer(writer, reader) -> None:
    import gguf
    for name, field in reader.fields.items():
        if not (name.startswith("tokenizer.") or name == "general.architecture"):
            continue
        if name == "general.architecture":
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(name, field.contents(), kind, sub_type=field.types[-1])
        else:
            writer.add_key_value(name, field.contents(), kind)


def make_model(out: Path, dim: int, layers: int, ff: int, heads: int, seed: int = 0) -> Path:
    import gguf

    from adapters_backend import demo
    reader = gguf.GGUFReader(demo.demo_model_path())
    vocab = int(reader.get_field("llama.vocab_size").contents())
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(out) + ".incomplete", "llama")
    w.add_name("LoRA Deck benchmark model (random weights)")
    w.add_context_length(2048)
    w.add_embedding_length(dim)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_rope_dimension_count(dim // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    _copy_tokenizer(w, reader)

    def rand(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * (1.0 / np.sqrt(shape[-1]))).astype(np.float16)

    w.add_tensor("token_embd.weight", rand(vocab, dim))
    for i in range(layers):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(dim, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(dim, np.float32))
        for name, shape in LINEARS.items():
            w.add_tensor(f"blk.{i}.{name}.weight", rand(*shape(dim, ff)))
    w.add_tensor("output_norm.weight", np.ones(dim, np.float32))
    w.add_tensor("output.weight", rand(vocab, dim))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    Path(str(out) + ".incomplete").rename(out)
    return out


def make_lora(out: Path, dim: int, layers: int, ff: int, rank: int = 16, seed: int = 1) -> Path:
    import gguf
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(out) + ".incomplete", "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    w.add_float32("adapter.lora.alpha", float(rank))
    w.add_name("LoRA Deck benchmark adapter (random)")
    for i in range(layers):
        for name, shape in LINEARS.items():
            rows, cols = shape(dim, ff)
            w.add_tensor(f"blk.{i}.{name}.weight.lora_a", (rng.standard_normal((rank, cols)) * 0.01).astype(np.float32))
            w.add_tensor(f"blk.{i}.{name}.weight.lora_b", (rng.standard_normal((rows, rank)) * 0.01).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    Path(str(out) + ".incomplete").rename(out)
    return out


def bench_files(dim: int = 768, layers: int = 12, ff: int = 2048, heads: int = 12) -> tuple[Path, Path]:
    from adapters_backend.paths import cache_dir
    folder = cache_dir() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"d{dim}-l{layers}-f{ff}-h{heads}"
    model, lora = folder / f"bench-llama-{tag}.gguf", folder / f"bench-lora-r16-{tag}.gguf"
    if not model.exists():
        make_model(model, dim, layers, ff, heads)
    if not lora.exists():
        make_lora(lora, dim, layers, ff)
    return model, lora


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--ff", type=int, default=2048)
    ap.add_argument("--heads", type=int, default=12)
    a = ap.parse_args()
    for p in bench_files(a.dim, a.layers, a.ff, a.heads):
        print(p)
