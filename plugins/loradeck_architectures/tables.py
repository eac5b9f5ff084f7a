"""One ArchSpec per model family: HF module path ↔ llama.cpp GGUF tensor, as data.

Sources, checked by tests/backend/test_arch_tables.py:
  [tm]    llama.cpp gguf-py/gguf/tensor_mapping.py (`TensorNameMap`), the HF name → GGUF tensor type
  [mt]    gguf-py/gguf/constants.py `MODEL_TENSORS[arch]`: the tensors an arch can have
  [conv]  llama.cpp conversion/<family>.py (`modify_tensors`, `filter_tensors`): transforms and drops
  [tf]    transformers 5.24 module names (AutoModelForCausalLM.from_config on the meta device)
  [lorax] default targets: LoRAX "Supported Target Modules" (shared/background/lorax-lora-target-modules.txt)
  [ref]   shared/REFERENCE.md §4.4 / §4.6
Transforms act on B's rows only (REFERENCE §4.4); names are resolved in adapters_backend/arch/transforms.py.
"""
from __future__ import annotations

from adapters_backend.plugins.api import ArchSpec, FusedRule, ModuleRule

# config.json keys per family ("a|b": first present wins; dots walk nested dicts).
_LLAMA_HP = {"n_layers": "num_hidden_layers", "hidden": "hidden_size", "n_head": "num_attention_heads",
             "n_head_kv": "num_key_value_heads", "vocab": "vocab_size", "intermediate": "intermediate_size",
             "head_dim": "head_dim", "tie": "tie_word_embeddings"}

_NO_OUTPUT = "this architecture has no GGUF output tensor: llama.cpp reuses token_embd for the output"
_TIED_NOTE = ("lm_head maps to GGUF 'output', which is absent when the base ties it to the embeddings "
              "(tie_word_embeddings); the compatibility check looks at the actual base")


def _llama_like_block(rope: bool) -> tuple[ModuleRule, ...]:
    """Llama-style attention + gated MLP. [tm] model.layers.{bid}.self_attn.*_proj / mlp.*_proj."""
    q, k = ("rope_q", "rope_k") if rope else ("none", "none")
    return (
        ModuleRule("model.layers.{bid}.self_attn.q_proj", "blk.{bid}.attn_q", transform=q),  # [tm][conv permute]
        ModuleRule("model.layers.{bid}.self_attn.k_proj", "blk.{bid}.attn_k", transform=k),  # [tm][conv permute]
        ModuleRule("model.layers.{bid}.self_attn.v_proj", "blk.{bid}.attn_v"),               # [tm]
        ModuleRule("model.layers.{bid}.self_attn.o_proj", "blk.{bid}.attn_output"),          # [tm]
        ModuleRule("model.layers.{bid}.mlp.gate_proj", "blk.{bid}.ffn_gate"),                # [tm]
        ModuleRule("model.layers.{bid}.mlp.up_proj", "blk.{bid}.ffn_up"),                    # [tm]
        ModuleRule("model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"),                # [tm]
    )


_EMBED = ModuleRule("model.embed_tokens", "token_embd", kind="embedding")                  # [tm]
_LM_HEAD = ModuleRule("lm_head", "output")                                                 # [tm]; see _TIED_NOTE

_LLAMA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head")  # [lorax]

# conversion/llama.py LlamaModel (registered for LlamaForCausalLM, MistralForCausalLM, MixtralForCausalLM):
# undo_permute = True → q rows permuted with n_head, k rows with n_head_kv.
LLAMA = ArchSpec(
    id="llama", name="Llama", gguf_arch="llama",
    hf_model_types=("llama",), hf_architectures=("LlamaForCausalLM", "LLaMAForCausalLM"),
    default_targets=_LLAMA_TARGETS,
    modules=(_EMBED, *_llama_like_block(rope=True), _LM_HEAD),
    hparams=dict(_LLAMA_HP),
    notes=_TIED_NOTE,
)

# Same module names and the same converter class as Llama; GGUF arch "llama". [conv llama.py][ref §4.4]
MISTRAL = ArchSpec(
    id="mistral", name="Mistral", gguf_arch="llama",
    hf_model_types=("mistral",), hf_architectures=("MistralForCausalLM",),
    default_targets=_LLAMA_TARGETS,
    modules=(_EMBED, *_llama_like_block(rope=True), _LM_HEAD),
    hparams=dict(_LLAMA_HP),
    notes=_TIED_NOTE,
)

# Mixtral: attention as Llama; MoE. transformers ≥5 fuses the experts into 3-D nn.Parameters
# mlp.experts.gate_up_proj (E, 2·I, H) and mlp.experts.down_proj (E, H, I) and the router is mlp.gate [tf];
# checkpoints and adapters from transformers 4 use block_sparse_moe.experts.{xid}.w1/w2/w3 and
# block_sparse_moe.gate [conv llama.py: stacked to layers.{bid}.feed_forward.experts.w{1,2,3} → *_exps][tm].
MIXTRAL = ArchSpec(
    id="mixtral", name="Mixtral", gguf_arch="llama",
    hf_model_types=("mixtral",), hf_architectures=("MixtralForCausalLM",),
    default_targets=("q_proj", "k_proj", "v_proj", "o_proj", "lm_head"),                   # [lorax]
    modules=(
        _EMBED,
        *_llama_like_block(rope=True)[:4],
        # [tm] "model.layers.{bid}.mlp.gate" (qwen2moe entry) / "…block_sparse_moe.gate" (mixtral) → ffn_gate_inp
        ModuleRule("model.layers.{bid}.mlp.gate", "blk.{bid}.ffn_gate_inp",
                   aliases=("model.layers.{bid}.block_sparse_moe.gate",)),
        # transformers ≥5 stacked experts. gate_up_proj has no gguf-py mapping: LoRA Deck's own name for
        # the fused gate+up stack, split onto ffn_gate_exps + ffn_up_exps by the FusedRule below [ref §4.4 notes].
        ModuleRule("model.layers.{bid}.mlp.experts.gate_up_proj", "blk.{bid}.ffn_gate_up_exps", kind="experts",
                   row_parts=("ff", "ff")),
        ModuleRule("model.layers.{bid}.mlp.experts.down_proj", "blk.{bid}.ffn_down_exps", kind="experts"),  # [tm]
        # transformers 4 per-expert Linear modules: w1 = gate, w2 = down, w3 = up [conv llama.py][tm "mixtral (merged)"]
        ModuleRule("model.layers.{bid}.block_sparse_moe.experts.{xid}.w1", "blk.{bid}.ffn_gate_exps",
                   kind="expert", native=False),
        ModuleRule("model.layers.{bid}.block_sparse_moe.experts.{xid}.w2", "blk.{bid}.ffn_down_exps",
                   kind="expert", native=False),
        ModuleRule("model.layers.{bid}.block_sparse_moe.experts.{xid}.w3", "blk.{bid}.ffn_up_exps",
                   kind="expert", native=False),
        _LM_HEAD,
    ),
    # conversion/base.py --fuse-gate-up-exps: cat([gate, up], dim=1) → ffn_gate_up_exps.
    fused=(FusedRule("blk.{bid}.ffn_gate_up_exps", ("blk.{bid}.ffn_gate_exps", "blk.{bid}.ffn_up_exps"),
                     part_rows=("ff", "ff")),),
    hparams={**_LLAMA_HP, "n_experts": "num_local_experts"},
    notes=_TIED_NOTE,
)

_GEMMA_LM_HEAD = ModuleRule(
    "lm_head", "", runtime=False,
    reason="Gemma GGUFs have no output tensor (llama.cpp uses token_embd); the converter drops lm_head.weight")

# conversion/gemma.py GemmaModel: no permutation (only norm weights +1); filter_tensors drops lm_head.weight.
# [mt] gemma has no OUTPUT tensor.
GEMMA = ArchSpec(
    id="gemma", name="Gemma", gguf_arch="gemma",
    hf_model_types=("gemma",), hf_architectures=("GemmaForCausalLM",),
    default_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),  # [lorax]
    modules=(_EMBED, *_llama_like_block(rope=False), _GEMMA_LM_HEAD),
    hparams=dict(_LLAMA_HP),
    tied_embeddings_default=True,
    notes="Embeddings are scaled by sqrt(hidden) in both transformers and llama.cpp, after the LoRA is added.",
)

# conversion/gemma.py Gemma2Model: as Gemma. Not in LoRAX's list; Gemma's targets used.
GEMMA2 = ArchSpec(
    id="gemma2", name="Gemma 2", gguf_arch="gemma2",
    hf_model_types=("gemma2",), hf_architectures=("Gemma2ForCausalLM",),
    default_targets=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    modules=(_EMBED, *_llama_like_block(rope=False), _GEMMA_LM_HEAD),
    hparams=dict(_LLAMA_HP),
    tied_embeddings_default=True,
    notes=GEMMA.notes,
)

# conversion/phi.py Phi3MiniModel: direct mapping, fused qkv_proj and gate_up_proj kept fused [tm][ref §4.4].
PHI3 = ArchSpec(
    id="phi3", name="Phi-3", gguf_arch="phi3",
    hf_model_types=("phi3",), hf_architectures=("Phi3ForCausalLM",),
    default_targets=("qkv_proj", "o_proj", "gate_up_proj", "down_proj", "lm_head"),        # [lorax]
    modules=(
        _EMBED,
        ModuleRule("model.layers.{bid}.self_attn.qkv_proj", "blk.{bid}.attn_qkv", row_parts=("q", "kv", "kv")),
        ModuleRule("model.layers.{bid}.self_attn.o_proj", "blk.{bid}.attn_output"),
        # [tm] "model.layers.{bid}.mlp.gate_up_proj" → ffn_up (phi3): 2·n_ff rows, gate first
        ModuleRule("model.layers.{bid}.mlp.gate_up_proj", "blk.{bid}.ffn_up", row_parts=("ff", "ff")),
        ModuleRule("model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"),
        _LM_HEAD,
    ),
    hparams=dict(_LLAMA_HP),
)

# conversion/phi.py Phi2Model: direct mapping. transformers' PhiForCausalLM has separate q/k/v_proj and
# self_attn.dense; the old remote-code layout (transformer.h.{bid}.mixer.Wqkv / out_proj, mlp.fc1/fc2,
# transformer.embd.wte, lm_head.linear) is in [tm] "# phi2".
PHI2 = ArchSpec(
    id="phi2", name="Phi-2", gguf_arch="phi2",
    hf_model_types=("phi", "phi-msft"), hf_architectures=("PhiForCausalLM",),
    default_targets=("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2", "lm_head"),      # [lorax]
    modules=(
        ModuleRule("model.embed_tokens", "token_embd", kind="embedding", aliases=("transformer.embd.wte",)),
        ModuleRule("model.layers.{bid}.self_attn.q_proj", "blk.{bid}.attn_q"),
        ModuleRule("model.layers.{bid}.self_attn.k_proj", "blk.{bid}.attn_k"),
        ModuleRule("model.layers.{bid}.self_attn.v_proj", "blk.{bid}.attn_v"),
        ModuleRule("model.layers.{bid}.self_attn.dense", "blk.{bid}.attn_output",
                   aliases=("transformer.h.{bid}.mixer.out_proj",)),
        ModuleRule("model.layers.{bid}.mlp.fc1", "blk.{bid}.ffn_up", aliases=("transformer.h.{bid}.mlp.fc1",)),
        ModuleRule("model.layers.{bid}.mlp.fc2", "blk.{bid}.ffn_down", aliases=("transformer.h.{bid}.mlp.fc2",)),
        ModuleRule("transformer.h.{bid}.mixer.Wqkv", "blk.{bid}.attn_qkv", native=False,
                   row_parts=("hidden", "hidden", "hidden")),
        ModuleRule("lm_head", "output", aliases=("lm_head.linear",)),
    ),
    # conversion/base.py --fuse-qkv (phi2 has ATTN_QKV in [mt]): cat(q, k, v) → attn_qkv.
    fused=(FusedRule("blk.{bid}.attn_qkv", ("blk.{bid}.attn_q", "blk.{bid}.attn_k", "blk.{bid}.attn_v"),
                     part_rows=("q", "kv", "kv")),),
    hparams={**_LLAMA_HP, "n_head_kv": "num_key_value_heads|num_attention_heads"},
    notes="lm_head has a bias: PEFT may save lm_head.base_layer.bias, a full tensor llama.cpp LoRA cannot carry.",
)

# conversion/qwen.py Qwen2Model: direct (NEOX rope, no permutation) [ref §4.4].
QWEN2 = ArchSpec(
    id="qwen2", name="Qwen2", gguf_arch="qwen2",
    hf_model_types=("qwen2",), hf_architectures=("Qwen2ForCausalLM",),
    default_targets=_LLAMA_TARGETS,
    modules=(_EMBED, *_llama_like_block(rope=False), _LM_HEAD),
    hparams=dict(_LLAMA_HP),
    notes=_TIED_NOTE,
)

# Qwen v1 (remote code QWenLMHeadModel; not in transformers): conversion/qwen.py QwenModel, direct.
# [tm] "# qwen": attn.c_attn → attn_qkv, attn.c_proj → attn_output, mlp.w1 → ffn_up, mlp.w2 → ffn_gate,
# mlp.c_proj → ffn_down, transformer.wte → token_embd. Its config's intermediate_size is twice one branch.
QWEN = ArchSpec(
    id="qwen", name="Qwen (v1)", gguf_arch="qwen",
    hf_model_types=("qwen",), hf_architectures=("QWenLMHeadModel",),
    default_targets=("c_attn", "c_proj", "w1", "w2", "lm_head"),                           # [lorax]
    modules=(
        ModuleRule("transformer.wte", "token_embd", kind="embedding", native=False),
        ModuleRule("transformer.h.{bid}.attn.c_attn", "blk.{bid}.attn_qkv", native=False,
                   row_parts=("hidden", "hidden", "hidden")),
        ModuleRule("transformer.h.{bid}.attn.c_proj", "blk.{bid}.attn_output", native=False),
        ModuleRule("transformer.h.{bid}.mlp.w1", "blk.{bid}.ffn_up", native=False),
        ModuleRule("transformer.h.{bid}.mlp.w2", "blk.{bid}.ffn_gate", native=False),
        ModuleRule("transformer.h.{bid}.mlp.c_proj", "blk.{bid}.ffn_down", native=False),
        ModuleRule("lm_head", "output"),
    ),
    hparams={**_LLAMA_HP, "n_head_kv": "num_key_value_heads|num_attention_heads"},
)

# conversion/command_r.py CommandR2Model: direct; [mt] command-r has no OUTPUT tensor, and
# convert_lora_to_gguf fails on lm_head with "Can not map tensor 'lm_head.weight'" [ref §4.6].
COMMAND_R = ArchSpec(
    id="command-r", name="Command-R", gguf_arch="command-r",
    hf_model_types=("cohere",), hf_architectures=("CohereForCausalLM",),
    default_targets=_LLAMA_TARGETS,
    modules=(_EMBED, *_llama_like_block(rope=False),
             ModuleRule("lm_head", "", runtime=False,
                        reason="Command-R GGUFs have no output tensor (llama.cpp uses token_embd); "
                               "llama.cpp's converter cannot map lm_head")),
    hparams=dict(_LLAMA_HP),
    tied_embeddings_default=True,
)

_DBRX_EXPERTS = ("DBRX experts are nn.Parameter tensors of shape (experts·ffn, hidden), not Linear modules: "
                 "LoRA tools cannot target them as modules and no converter maps them to llama.cpp LoRA tensors")

# conversion/dbrx.py DbrxModel: attention direct; experts viewed (E, ffn, d), w2 permuted (0, 2, 1).
# [tm] "# dbrx" names.
DBRX = ArchSpec(
    id="dbrx", name="DBRX", gguf_arch="dbrx",
    hf_model_types=("dbrx",), hf_architectures=("DbrxForCausalLM",),
    default_targets=("Wqkv", "out_proj", "lm_head"),                                       # [lorax]
    modules=(
        ModuleRule("transformer.wte", "token_embd", kind="embedding"),
        ModuleRule("transformer.blocks.{bid}.norm_attn_norm.attn.Wqkv", "blk.{bid}.attn_qkv",
                   row_parts=("q", "kv", "kv")),
        ModuleRule("transformer.blocks.{bid}.norm_attn_norm.attn.out_proj", "blk.{bid}.attn_output"),
        ModuleRule("transformer.blocks.{bid}.ffn.router.layer", "blk.{bid}.ffn_gate_inp"),
        ModuleRule("transformer.blocks.{bid}.ffn.experts.mlp.w1", "blk.{bid}.ffn_gate_exps", kind="experts",
                   runtime=False, reason=_DBRX_EXPERTS),
        ModuleRule("transformer.blocks.{bid}.ffn.experts.mlp.v1", "blk.{bid}.ffn_up_exps", kind="experts",
                   runtime=False, reason=_DBRX_EXPERTS),
        ModuleRule("transformer.blocks.{bid}.ffn.experts.mlp.w2", "blk.{bid}.ffn_down_exps", kind="experts",
                   runtime=False, reason=_DBRX_EXPERTS),
        ModuleRule("lm_head", "output"),
    ),
    hparams={"n_layers": "n_layers", "hidden": "d_model", "n_head": "n_heads",
             "n_head_kv": "attn_config.kv_n_heads", "vocab": "vocab_size",
             "intermediate": "ffn_config.ffn_hidden_size", "n_experts": "ffn_config.moe_num_experts",
             "tie": "tie_word_embeddings"},
)

# conversion/gpt2.py GPT2Model: Conv1D weights (in, out) transposed to (out, in) for c_attn, c_proj, c_fc.
# The adapter is in Linear orientation, so the correct LoRA is lora_a = A, lora_b = B [ref §1.8, §4.6].
# GPT-2 always ties lm_head to wte; its checkpoints have no lm_head.weight → no GGUF output tensor.
GPT2 = ArchSpec(
    id="gpt2", name="GPT-2", gguf_arch="gpt2",
    hf_model_types=("gpt2",), hf_architectures=("GPT2LMHeadModel",),
    default_targets=("c_attn", "c_proj", "c_fc"),                                          # [lorax]
    modules=(
        ModuleRule("transformer.wte", "token_embd", kind="embedding"),
        ModuleRule("transformer.wpe", "position_embd", kind="embedding"),
        ModuleRule("transformer.h.{bid}.attn.c_attn", "blk.{bid}.attn_qkv", kind="conv1d",
                   row_parts=("hidden", "hidden", "hidden")),
        ModuleRule("transformer.h.{bid}.attn.c_proj", "blk.{bid}.attn_output", kind="conv1d"),
        ModuleRule("transformer.h.{bid}.mlp.c_fc", "blk.{bid}.ffn_up", kind="conv1d"),
        ModuleRule("transformer.h.{bid}.mlp.c_proj", "blk.{bid}.ffn_down", kind="conv1d"),
        ModuleRule("lm_head", "output"),
    ),
    hparams={"n_layers": "n_layer", "hidden": "n_embd", "n_head": "n_head", "n_head_kv": "n_head",
             "vocab": "vocab_size", "intermediate": "n_inner", "tie": "tie_word_embeddings"},
    tied_embeddings_default=True,
)

# conversion/bloom.py BloomModel: strips "transformer."; query_key_value rows regrouped from per-head
# interleaved [q,k,v] to [Q;K;V] (bloom_qkv). Tied embeddings by default (no output tensor then).
BLOOM = ArchSpec(
    id="bloom", name="BLOOM", gguf_arch="bloom",
    hf_model_types=("bloom",), hf_architectures=("BloomForCausalLM",),
    default_targets=("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h", "lm_head"),  # [lorax]
    modules=(
        ModuleRule("transformer.word_embeddings", "token_embd", kind="embedding", aliases=("word_embeddings",)),
        ModuleRule("transformer.h.{bid}.self_attention.query_key_value", "blk.{bid}.attn_qkv",
                   transform="bloom_qkv", aliases=("h.{bid}.self_attention.query_key_value",),
                   row_parts=("hidden", "hidden", "hidden")),
        ModuleRule("transformer.h.{bid}.self_attention.dense", "blk.{bid}.attn_output",
                   aliases=("h.{bid}.self_attention.dense",)),
        ModuleRule("transformer.h.{bid}.mlp.dense_h_to_4h", "blk.{bid}.ffn_up", aliases=("h.{bid}.mlp.dense_h_to_4h",)),
        ModuleRule("transformer.h.{bid}.mlp.dense_4h_to_h", "blk.{bid}.ffn_down",
                   aliases=("h.{bid}.mlp.dense_4h_to_h",)),
        ModuleRule("lm_head", "output"),
    ),
    hparams={"n_layers": "n_layer|num_hidden_layers", "hidden": "hidden_size|n_embed", "n_head": "n_head|num_attention_heads",
             "n_head_kv": "n_head|num_attention_heads", "vocab": "vocab_size", "intermediate": "n_inner",
             "tie": "tie_word_embeddings"},
    tied_embeddings_default=True,
)
