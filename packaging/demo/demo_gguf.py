"""Write the demo model, and LoRA adapters for it, as GGUF files with gguf-py's GGUFWriter.

Written here rather than with llama.cpp's converter so that re-running the training needs no
llama.cpp sources. Two things a Llama GGUF needs that the Hugging Face checkpoint does not do:

* llama.cpp rotates query/key pairs (i, i + d/2) of each head as adjacent rows (2i, 2i+1), so the
  rows of q_proj and k_proj (and the B factor of their LoRAs) are reordered per head;
* the tokenizer travels inside the file as ``tokenizer.ggml.*`` keys (SentencePiece "llama" model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Hugging Face module -> GGUF tensor name (block index filled in).
LINEAR_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
NORM_NAMES = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def rope_rows_to_gguf(rows: np.ndarray, n_heads: int) -> np.ndarray:
    """Reorder the output rows of a q/k projection (or of a LoRA B factor) from the Hugging Face
    layout (per head: first halves, then second halves) to llama.cpp's interleaved layout."""
    out = rows.shape[0]
    half = out // n_heads // 2
    return rows.reshape(n_heads, 2, half, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def _gguf_linear_name(hf_module: str) -> str | None:
    """``model.layers.3.mlp.up_proj`` -> ``blk.3.ffn_up``; None if not a block linear."""
    parts = hf_module.split(".")
    if len(parts) != 5 or parts[:2] != ["model", "layers"]:
        return None
    short = LINEAR_NAMES.get(".".join(parts[3:]))
    return f"blk.{int(parts[2])}.{short}" if short else None


def _heads_for(hf_module: str, config) -> int | None:
    if hf_module.endswith("q_proj"):
        return config.num_attention_heads
    if hf_module.endswith("k_proj"):
        return config.num_key_value_heads
    return None


def _finish(writer) -> None:
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_model_gguf(path: Path, state: dict[str, np.ndarray], config, tokenizer, *, name: str,
                     description: str, license_id: str, chat_template: str, context_length: int) -> None:
    """Write the whole model: hyper-parameters, tokenizer, chat template, licence, weights.

    ``state`` holds the float32 Hugging Face weights (tied embeddings: no ``lm_head.weight``).
    Matrices are stored as F16, norms as F32 (what llama.cpp expects for a "mostly F16" file).
    """
    import gguf
    from demo_tokenizer import BOS_ID, IM_END_ID, UNK_ID

    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_name(name)
    w.add_description(description)
    w.add_author("LoRA Deck project")
    w.add_license(license_id)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_context_length(context_length)
    w.add_embedding_length(config.hidden_size)
    w.add_block_count(config.num_hidden_layers)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(config.num_attention_heads)
    w.add_head_count_kv(config.num_key_value_heads)
    w.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    w.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    w.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    w.add_vocab_size(config.vocab_size)

    pieces, scores, types = tokenizer.gguf_vocab()
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(IM_END_ID)  # the chat's end of turn; llama-cpp-python stops on the EOS
    w.add_eot_token_id(IM_END_ID)
    w.add_unk_token_id(UNK_ID)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    w.add_remove_extra_whitespaces(False)
    w.add_chat_template(chat_template)

    def f16(a):
        return np.ascontiguousarray(a, dtype=np.float16)

    def f32(a):
        return np.ascontiguousarray(a, dtype=np.float32)

    w.add_tensor("token_embd.weight", f16(state["model.embed_tokens.weight"]))
    for i in range(config.num_hidden_layers):
        for hf_norm, short in NORM_NAMES.items():
            w.add_tensor(f"blk.{i}.{short}.weight", f32(state[f"model.layers.{i}.{hf_norm}.weight"]))
        for hf_lin in LINEAR_NAMES:
            module = f"model.layers.{i}.{hf_lin}"
            weight = state[module + ".weight"]
            heads = _heads_for(module, config)
            if heads:
                weight = rope_rows_to_gguf(weight, heads)
            w.add_tensor(_gguf_linear_name(module) + ".weight", f16(weight))
    w.add_tensor("output_norm.weight", f32(state["model.norm.weight"]))
    _finish(w)


def write_lora_gguf(path: Path, pairs: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float, config,
                    *, name: str) -> None:
    """Write a llama.cpp LoRA adapter. ``pairs`` maps a Hugging Face module name to (A, B) with
    A (r, in) and B (out, r). llama.cpp scales B·A by strength * alpha / r, like PEFT."""
    import gguf

    w = gguf.GGUFWriter(str(path), arch="llama")
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    w.add_name(name)
    for module in sorted(pairs):
        a, b = pairs[module]
        target = _gguf_linear_name(module)
        if target is None:
            raise ValueError(f"no GGUF tensor for module {module}")
        heads = _heads_for(module, config)
        if heads:
            b = rope_rows_to_gguf(b, heads)
        w.add_tensor(target + ".weight.lora_a", np.ascontiguousarray(a, dtype=np.float16))
        w.add_tensor(target + ".weight.lora_b", np.ascontiguousarray(b, dtype=np.float16))
    _finish(w)
