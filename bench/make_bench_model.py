"""The benchmarks' GGUF files: random-weight Llama models written with gguf-py, and LoRAs for them.

`write_llama` and `write_lora` serve every benchmark (bench_engine.py and bench_switch.py make their
own weights); run as a script, this makes a Llama of realistic size (~86M parameters, f16) and a
rank-16 LoRA for it.

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


def copy_tokenizer(writer, source: Path) -> int:
    """The tokenizer.* keys of the GGUF `source` (vocabulary, scores, merges, its chat template if it
    has one) into `writer`; returns the number of tokens."""
    import gguf
    n = 0
    for name, field in gguf.GGUFReader(source).fields.items():
        if not name.startswith("tokenizer."):
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(name, field.contents(), kind, sub_type=field.types[-1])
            n = len(field.data) if name == "tokenizer.ggml.tokens" else n
        else:
            writer.add_key_value(name, field.contents(), kind)
    return n


def _finish(writer, path: Path) -> Path:
    """Write out what `writer` holds (beside `path`) and move it to `path`."""
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    Path(str(path) + ".incomplete").rename(path)
    return path


def write_llama(path: Path, tensors: dict[str, np.ndarray], *, dim: int, layers: int, ff: int, heads: int,
                tokenizer_from: Path, name: str, context_length: int = 2048, chat_template: str | None = None) -> Path:
    """A Llama GGUF (f16 matrices, f32 norms) with the tokenizer of `tokenizer_from`; written beside
    its final name and renamed, so an interrupted run leaves no half file that looks made."""
    import gguf
    w = gguf.GGUFWriter(str(path) + ".incomplete", "llama")
    w.add_name(name)
    w.add_context_length(context_length)
    w.add_embedding_length(dim)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(heads)
    w.add_rope_dimension_count(dim // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_vocab_size(copy_tokenizer(w, tokenizer_from))
    if chat_template is not None:
        w.add_chat_template(chat_template)
    for tensor, arr in tensors.items():
        w.add_tensor(tensor, arr)
    return _finish(w, path)


def write_lora(path: Path, pairs: dict[str, tuple[np.ndarray, np.ndarray]], dtype=np.float32, *,
               alpha: float | None = None, name: str | None = None) -> Path:
    """A llama.cpp LoRA GGUF: `pairs` maps a base tensor name to its (A (r, in), B (out, r))."""
    import gguf
    w = gguf.GGUFWriter(str(path) + ".incomplete", "llama")
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    if alpha is not None:
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    if name is not None:
        w.add_name(name)
    for tensor, (a, b) in pairs.items():
        w.add_tensor(tensor + ".lora_a", a.astype(dtype))
        w.add_tensor(tensor + ".lora_b", b.astype(dtype))
    return _finish(w, path)


def make_model(out: Path, dim: int, layers: int, ff: int, heads: int, seed: int = 0) -> Path:
    """Random weights, scaled so activations stay near 1; the demo model's tokenizer and chat template."""
    import gguf

    from adapters_backend import demo
    vocab = int(gguf.GGUFReader(demo.demo_model_path()).get_field("llama.vocab_size").contents())
    rng = np.random.default_rng(seed)

    def rand(*shape):
        return (rng.standard_normal(shape, dtype=np.float32) * (1.0 / np.sqrt(shape[-1]))).astype(np.float16)

    tensors = {"token_embd.weight": rand(vocab, dim)}
    for i in range(layers):
        tensors[f"blk.{i}.attn_norm.weight"] = np.ones(dim, np.float32)
        tensors[f"blk.{i}.ffn_norm.weight"] = np.ones(dim, np.float32)
        for name, shape in LINEARS.items():
            tensors[f"blk.{i}.{name}.weight"] = rand(*shape(dim, ff))
    tensors["output_norm.weight"] = np.ones(dim, np.float32)
    tensors["output.weight"] = rand(vocab, dim)
    return write_llama(out, tensors, dim=dim, layers=layers, ff=ff, heads=heads, tokenizer_from=demo.demo_model_path(),
                       name="LoRA Deck benchmark model (random weights)")


def make_lora(out: Path, dim: int, layers: int, ff: int, rank: int = 16, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    pairs = {}
    for i in range(layers):
        for name, shape in LINEARS.items():
            rows, cols = shape(dim, ff)
            pairs[f"blk.{i}.{name}.weight"] = ((rng.standard_normal((rank, cols)) * 0.01).astype(np.float32),
                                               (rng.standard_normal((rows, rank)) * 0.01).astype(np.float32))
    return write_lora(out, pairs, alpha=float(rank), name="LoRA Deck benchmark adapter (random)")


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
