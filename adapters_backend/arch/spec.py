"""ArchSpec: what LoRA Deck knows about one model family, as plain data a plugin fills in.

Adding a model family means adding one ArchSpec (in a plugin's table module), never a subclass.
Every template uses `{bid}` for the block (layer) index and names modules without `.weight`.

    ArchSpec(
        id="llama", name="Llama", gguf_arch="llama",
        hf_model_types=("llama",), hf_architectures=("LlamaForCausalLM",),
        default_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        modules=(
            ModuleRule("model.layers.{bid}.self_attn.q_proj", "blk.{bid}.attn_q", transform="rope_q"),
            ...
        ),
    )

Transforms are named, not coded, here; `adapters_backend/arch/transforms.py` holds their math (a
third-party plugin can name one of its own as "module:attr").
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModuleRule:
    """One HF module ↔ one GGUF tensor.

    hf:        HF module path template, e.g. "model.layers.{bid}.self_attn.q_proj".
    gguf:      GGUF tensor name template without ".weight", e.g. "blk.{bid}.attn_q".
    kind:      "linear" (nn.Linear), "conv1d" (GPT-2 Conv1D, weight stored (in, out)),
               "embedding" (nn.Embedding), "expert" (one expert of a stacked MoE tensor; `hf` then
               holds `{xid}` for the expert index) or "experts" (an nn.Parameter that stacks all
               experts, e.g. transformers ≥5 Mixtral `mlp.experts.down_proj` (E, out, in)).
    gguf:      "" when the architecture has no GGUF tensor for this module at all (then
               runtime=False and `reason` says why).
    transform: name of the exact row transform llama.cpp's converter applies to this weight
               ("none", "rope_q", "rope_k", "bloom_qkv", …). It acts on B's rows only.
    aliases:   other HF templates that mean the same module (older checkpoints, remote code).
    runtime:   False when llama.cpp cannot apply a runtime LoRA to this tensor; `reason` says why.
    """

    hf: str
    gguf: str
    kind: str = "linear"
    transform: str = "none"
    aliases: tuple[str, ...] = ()
    runtime: bool = True
    reason: str = ""
    expert_template: str = ""   # kept for compatibility; kind="expert" rules put {xid} in `hf`
    # Additive fields (architecture tables, compatibility check):
    native: bool = True         # False: `hf` exists only in remote code / older checkpoints, not in
                                # the transformers class of this family (tests skip it there)
    row_parts: tuple[str, ...] = ()  # a fused HF module: its row blocks, in GGUF row order, as
                                # row-count keys ("q", "kv", "ff", "hidden"; see BaseModelInfo.rows)


@dataclass(frozen=True)
class FusedRule:
    """A GGUF tensor that stacks the rows of several GGUF tensors (e.g. a base converted with
    `--fuse-qkv`): `fused` = concat(parts) along the output rows, in this order. Used both ways:
    separate HF q/k/v adapters onto a fused base, and a fused HF adapter onto a split base."""

    fused: str                 # e.g. "blk.{bid}.attn_qkv"
    parts: tuple[str, ...]     # e.g. ("blk.{bid}.attn_q", "blk.{bid}.attn_k", "blk.{bid}.attn_v")
    part_rows: tuple[str, ...] = ()  # row-count key of each part ("q", "kv", "ff"); () = equal split


@dataclass(frozen=True)
class ArchSpec:
    id: str                                   # LoRA Deck's id, lowercase ("llama", "phi3", "gpt2")
    name: str                                 # shown to users ("Llama / Mistral")
    gguf_arch: str                            # llama.cpp general.architecture
    hf_model_types: tuple[str, ...]           # config.json "model_type" values
    hf_architectures: tuple[str, ...]         # config.json "architectures" class names
    default_targets: tuple[str, ...]          # LoRAX's default target modules (short names)
    modules: tuple[ModuleRule, ...]
    fused: tuple[FusedRule, ...] = ()
    # hparams names in config.json this family uses (defaults are the Llama names). A value may list
    # alternatives "a|b" (first present wins) and dotted paths into nested dicts
    # ("attn_config.kv_n_heads"). Known keys: n_layers, hidden, n_head, n_head_kv, vocab,
    # intermediate, head_dim, n_experts, tie (tie_word_embeddings).
    hparams: Mapping[str, str] = field(default_factory=lambda: {
        "n_layers": "num_hidden_layers", "hidden": "hidden_size", "n_head": "num_attention_heads",
        "n_head_kv": "num_key_value_heads", "vocab": "vocab_size", "intermediate": "intermediate_size",
    })
    tied_embeddings_default: bool = False     # lm_head shares token_embd unless config says otherwise
    notes: str = ""
