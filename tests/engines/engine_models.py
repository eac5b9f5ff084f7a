"""Tiny GGUF files for the engine tests, written with gguf-py and numpy.

- a random-weight Llama base (f32, hidden 64, 2 layers) with a real vocabulary copied from llama.cpp's
  `ggml-vocab-llama-spm.gguf` and a small Jinja chat template;
- llama.cpp LoRA GGUFs written directly (`<base tensor>.lora_a/.lora_b`, optional `adapter.lora.alpha`);
- the reference: a base with ΔW = Σ sᵢ·cᵢ·BᵢAᵢ merged into its weights, computed here in numpy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import gguf
import numpy as np

DIM, LAYERS, HEADS, FF, CTX = 64, 2, 4, 128, 512
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# Qwen3's switch for reasoning, on a tiny ChatML template: an empty reasoning opens the answer when off.
QWEN3_LIKE_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}")
# DeepSeek-R1's shape: the generation prompt opens the reasoning, and an earlier answer is given back
# without its reasoning (the part up to `</think>` is dropped).
R1_LIKE_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% set text = m['content'] %}"
    "{% if m['role'] == 'assistant' and '</think>' in text %}{% set text = text.split('</think>')[-1] %}{% endif %}"
    "<|{{ m['role'] }}|>\n{{ text }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n<think>\n{% endif %}")
LINEARS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def _linear_shape(name: str) -> tuple[int, int]:     # numpy (out, in)
    return {"ffn_gate": (FF, DIM), "ffn_up": (FF, DIM), "ffn_down": (DIM, FF)}.get(name, (DIM, DIM))


@lru_cache(maxsize=4)
def tokenizer_kvs(vocab_gguf: Path) -> tuple:
    """(key, value, type, sub_type) of every tokenizer.* KV of a vocab-only GGUF (read once: it is slow)."""
    reader = gguf.GGUFReader(vocab_gguf)
    out = []
    for name, f in reader.fields.items():
        if name.startswith("tokenizer."):
            sub = f.types[-1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
            out.append((name, f.contents(), f.types[0], sub))
    return tuple(out)


def copy_tokenizer(writer: gguf.GGUFWriter, vocab_gguf: Path) -> int:
    """Copy every tokenizer.* KV of a vocab-only GGUF; returns the vocabulary size."""
    n_vocab = 0
    for name, value, vtype, sub in tokenizer_kvs(Path(vocab_gguf)):
        writer.add_key_value(name, value, vtype, sub_type=sub)
        if name == "tokenizer.ggml.tokens":
            n_vocab = len(value)
    return n_vocab


def base_weights(n_vocab: int, seed: int = 0, arch_dim: int = DIM) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = {"token_embd.weight": rng.standard_normal((n_vocab, DIM)).astype(np.float32),
         "output_norm.weight": np.ones(DIM, np.float32),
         "output.weight": (rng.standard_normal((n_vocab, DIM)) * 3.0 / np.sqrt(DIM)).astype(np.float32)}
    for i in range(LAYERS):
        w[f"blk.{i}.attn_norm.weight"] = np.ones(DIM, np.float32)
        w[f"blk.{i}.ffn_norm.weight"] = np.ones(DIM, np.float32)
        for name in LINEARS:
            out, inp = _linear_shape(name)
            w[f"blk.{i}.{name}.weight"] = (rng.standard_normal((out, inp)) / np.sqrt(inp)).astype(np.float32)
    return w


def random_model(path: Path, vocab_gguf: Path, chat_template: str | None = CHAT_TEMPLATE) -> Path:
    """A random-weight Llama with llama.cpp's 32k test vocabulary and `chat_template` (it almost never
    ends its turn: it writes for as long as it may)."""
    return write_base(path, base_weights(32000, seed=0), vocab_gguf, chat_template=chat_template)


def write_base(path: Path, weights: dict[str, np.ndarray], vocab_gguf: Path, *, arch: str = "llama",
               chat_template: str | None = CHAT_TEMPLATE, name: str = "tiny test llama",
               split_max_tensors: int = 0, context_length: int = CTX) -> Path:
    """The model file; with `split_max_tensors`, a split model (gguf-py names the parts
    STEM-0000i-of-0000n.gguf) and the first part is returned."""
    w = gguf.GGUFWriter(str(path), arch, split_max_tensors=split_max_tensors)
    w.add_name(name)
    w.add_context_length(context_length)
    w.add_embedding_length(DIM)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FF)
    w.add_head_count(HEADS)
    w.add_head_count_kv(HEADS)
    w.add_rope_dimension_count(DIM // HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    n_vocab = copy_tokenizer(w, vocab_gguf)
    w.add_vocab_size(n_vocab)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    for tname, arr in weights.items():
        w.add_tensor(tname, np.ascontiguousarray(arr))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return next(path.parent.glob(f"{path.stem}-00001-of-*.gguf")) if split_max_tensors else path


@dataclass
class Lora:
    """LoRA factors in GGUF orientation: pairs[base tensor] = (a, b) as numpy arrays as written."""

    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    alpha: float = 0.0                 # 0 → the runtime scale is the strength itself

    def scale_for(self, base_name: str) -> float:
        a, b = self.pairs[base_name]
        rank = b.shape[-1]
        return self.alpha / rank if self.alpha else 1.0

    def delta(self, base_name: str) -> np.ndarray:
        """ΔW in numpy layout of the base tensor, at strength 1."""
        a, b = self.pairs[base_name]
        c = self.scale_for(base_name)
        if base_name == "token_embd.weight":          # a (vocab, r), b (dim, r) → ΔE (vocab, dim)
            return c * (a.astype(np.float64) @ b.astype(np.float64).T)
        return c * (b.astype(np.float64) @ a.astype(np.float64))


def make_lora(weights: dict[str, np.ndarray], *, rank: int = 4, seed: int = 1, targets=("attn_q", "attn_v", "ffn_up"),
              layers=None, alpha: float = 0.0, embed: bool = False, gain: float = 1.0) -> Lora:
    """Random factors big enough to change greedy replies at strength 1."""
    rng = np.random.default_rng(seed)
    lora = Lora(alpha=alpha)
    c = alpha / rank if alpha else 1.0
    for i in (range(LAYERS) if layers is None else layers):
        for t in targets:
            out, inp = _linear_shape(t)
            a = (rng.standard_normal((rank, inp)) / np.sqrt(inp)).astype(np.float32)
            b = (rng.standard_normal((out, rank)) * gain / np.sqrt(rank) / c).astype(np.float32)
            lora.pairs[f"blk.{i}.{t}.weight"] = (a, b)
    if embed:
        n_vocab = weights["token_embd.weight"].shape[0]
        a = (rng.standard_normal((n_vocab, rank)) / np.sqrt(rank)).astype(np.float32)
        b = (rng.standard_normal((DIM, rank)) * gain / c).astype(np.float32)
        lora.pairs["token_embd.weight"] = (a, b)
    return lora


def write_lora(path: Path, lora: Lora, *, arch: str = "llama", dtype=np.float32) -> Path:
    w = gguf.GGUFWriter(str(path), arch)
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    if lora.alpha:
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(lora.alpha))
    for name, (a, b) in lora.pairs.items():
        w.add_tensor(name + ".lora_a", np.ascontiguousarray(a, dtype))
        w.add_tensor(name + ".lora_b", np.ascontiguousarray(b, dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def merged_weights(weights: dict[str, np.ndarray], mix: list[tuple[Lora, float]],
                   layer_factors: dict[int, float] | None = None) -> dict[str, np.ndarray]:
    """W + Σ s·c·BA per tensor (layer_factors multiply the delta of blk.N tensors, for every adapter)."""
    out = dict(weights)
    for lora, strength in mix:
        for name in lora.pairs:
            f = 1.0
            if layer_factors and name.startswith("blk."):
                f = layer_factors.get(int(name.split(".")[1]), 1.0)
            out[name] = (out[name].astype(np.float64) + strength * f * lora.delta(name)).astype(np.float32)
    return out
