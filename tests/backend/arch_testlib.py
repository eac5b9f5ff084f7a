"""Helpers for the architecture / base-model / compatibility tests (not a test module).

Tiny transformers configs per family, meta-device models, GGUF bases written with gguf.GGUFWriter,
and real PEFT adapters turned into canonical `Adapter`s (DictSource) without any format reader.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from adapters_backend.core.adapter import Adapter, ModuleDelta
from adapters_backend.formats.safetensors_io import DictSource

REPO = Path(__file__).resolve().parents[2]
SRC_CANDIDATES = (os.environ.get("LORADECK_LLAMA_CPP_SRC"), REPO / ".cache" / "llama.cpp",
                  "/tmp/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp")


def llama_cpp_src() -> Path | None:
    for c in SRC_CANDIDATES:
        if c and (Path(c) / "conversion" / "llama.py").exists():
            return Path(c)
    return None


_IDS = dict(pad_token_id=0, bos_token_id=1, eos_token_id=2)


def tiny_config(family: str, **over):
    """A 2-layer, hidden-32 config of `family` (LoRA Deck arch id), vocab 100, 4 heads (2 KV heads)."""
    import transformers as T
    base = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=100, **_IDS)
    base.update(over)
    if family in ("llama", "mistral", "qwen2", "phi3"):
        cls = {"llama": T.LlamaConfig, "mistral": T.MistralConfig, "qwen2": T.Qwen2Config, "phi3": T.Phi3Config}
        return cls[family](**base)
    if family == "mixtral":
        return T.MixtralConfig(num_local_experts=4, num_experts_per_tok=2, **base)
    if family in ("gemma", "gemma2"):
        return (T.GemmaConfig if family == "gemma" else T.Gemma2Config)(head_dim=8, **base)
    if family == "command-r":
        return T.CohereConfig(**base)
    if family == "phi2":
        base.pop("num_key_value_heads")
        return T.PhiConfig(**base)
    if family == "dbrx":
        return T.DbrxConfig(d_model=base["hidden_size"], n_heads=4, n_layers=base["num_hidden_layers"],
                            vocab_size=base["vocab_size"], max_seq_len=64,
                            attn_config={"kv_n_heads": 2, "rope_theta": 10000.0},
                            ffn_config={"ffn_hidden_size": 64, "moe_num_experts": 4, "moe_top_k": 2}, **_IDS)
    if family == "gpt2":
        return T.GPT2Config(n_embd=base["hidden_size"], n_layer=base["num_hidden_layers"], n_head=4,
                            vocab_size=base["vocab_size"], n_positions=64, **_IDS)
    if family == "bloom":
        return T.BloomConfig(hidden_size=base["hidden_size"], n_layer=base["num_hidden_layers"], n_head=4,
                             vocab_size=base["vocab_size"], **_IDS)
    raise KeyError(family)


TRANSFORMERS_FAMILIES = ("llama", "mistral", "mixtral", "gemma", "gemma2", "phi3", "phi2", "qwen2", "command-r",
                         "dbrx", "gpt2", "bloom")


def meta_model(family: str, **over):
    import torch
    from transformers import AutoModelForCausalLM
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(tiny_config(family, **over))


def real_model(family: str, seed: int = 0, **over):
    import torch
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_config(family, **over))


# ------------------------------------------------------------------------------------------- GGUF
def write_gguf(path: Path, arch: str, tensors: dict[str, tuple[int, ...]], *, n_layers: int = 2, hidden: int = 32,
               n_head: int = 4, n_head_kv: int = 2, ff: int = 64, vocab: int = 100, n_experts: int = 0,
               general_type: str | None = None, name: str = "Tiny test model",
               base_repos: tuple[str, ...] = (), extra: dict | None = None) -> Path:
    """A GGUF model with realistic metadata; `tensors` maps GGUF name → numpy-order shape (zeros)."""
    import gguf
    w = gguf.GGUFWriter(str(path), arch=arch)
    w.add_name(name)
    if general_type:
        w.add_type(general_type)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_block_count(n_layers)
    w.add_context_length(128)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    if n_experts:
        w.add_expert_count(n_experts)
        w.add_expert_used_count(2)
    w.add_base_model_count(len(base_repos))
    for i, repo in enumerate(base_repos):
        w.add_base_model_name(i, repo.split("/")[-1])
        w.add_base_model_organization(i, repo.split("/")[0])
        w.add_base_model_repo_url(i, f"https://huggingface.co/{repo}")
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>" for i in range(vocab)])
    for k, v in (extra or {}).items():
        w.add_string(k, v) if isinstance(v, str) else w.add_uint32(k, v)
    for tname, shape in tensors.items():
        w.add_tensor(tname, np.zeros(shape, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def llama_gguf_tensors(n_layers=2, hidden=32, n_head=4, n_head_kv=2, ff=64, vocab=100, head_dim=None,
                       output=True, n_experts=0) -> dict[str, tuple[int, ...]]:
    """The tensors llama.cpp's converter writes for a Llama (or Mixtral when n_experts) model."""
    hd = head_dim or hidden // n_head
    t = {"token_embd.weight": (vocab, hidden), "output_norm.weight": (hidden,)}
    if output:
        t["output.weight"] = (vocab, hidden)
    for b in range(n_layers):
        t.update({f"blk.{b}.attn_norm.weight": (hidden,), f"blk.{b}.ffn_norm.weight": (hidden,),
                  f"blk.{b}.attn_q.weight": (n_head * hd, hidden), f"blk.{b}.attn_k.weight": (n_head_kv * hd, hidden),
                  f"blk.{b}.attn_v.weight": (n_head_kv * hd, hidden), f"blk.{b}.attn_output.weight": (hidden, n_head * hd)})
        if n_experts:
            t.update({f"blk.{b}.ffn_gate_inp.weight": (n_experts, hidden),
                      f"blk.{b}.ffn_gate_exps.weight": (n_experts, ff, hidden),
                      f"blk.{b}.ffn_up_exps.weight": (n_experts, ff, hidden),
                      f"blk.{b}.ffn_down_exps.weight": (n_experts, hidden, ff)})
        else:
            t.update({f"blk.{b}.ffn_gate.weight": (ff, hidden), f"blk.{b}.ffn_up.weight": (ff, hidden),
                      f"blk.{b}.ffn_down.weight": (hidden, ff)})
    return t


# ------------------------------------------------------------------------------------------- adapters
def lora_module(name: str, out_f: int, in_f: int, rank: int = 4, variant: str = "lora",
                tensors: dict | None = None, rng=None) -> ModuleDelta:
    """A ModuleDelta with random A (rank, in) / B (out, rank) factors put in `tensors`."""
    rng = rng or np.random.default_rng(0)
    roles = {}
    if tensors is not None:
        if variant in ("full",):
            tensors[f"{name}.weight"] = rng.standard_normal((out_f, in_f)).astype(np.float32)
            roles = {"weight": f"{name}.weight"}
        else:
            tensors[f"{name}.A"] = rng.standard_normal((rank, in_f)).astype(np.float32)
            tensors[f"{name}.B"] = rng.standard_normal((out_f, rank)).astype(np.float32)
            roles = {"A": f"{name}.A", "B": f"{name}.B"}
    return ModuleDelta(name=name, variant=variant, out_features=out_f, in_features=in_f,
                       rank=0 if variant == "full" else rank, alpha=float(rank), scale=1.0, roles=roles)


def make_adapter(modules: list[tuple], architecture: str | None = None, base_model: str | None = None,
                 path: str = "synthetic") -> Adapter:
    """Adapter from [(name, out, in[, rank[, variant]]), ...] with real random tensors."""
    tensors: dict[str, np.ndarray] = {}
    rng = np.random.default_rng(0)
    mods = {}
    for spec in modules:
        name, out_f, in_f, *rest = spec
        rank = rest[0] if rest else 4
        variant = rest[1] if len(rest) > 1 else "lora"
        mods[name] = lora_module(name, out_f, in_f, rank, variant, tensors, rng)
    return Adapter(path=Path(path), format_id="test", modules=mods, source=DictSource(tensors),
                   architecture=architecture, base_model=base_model)


def peft_adapter(model, architecture: str | None = None, base_model: str | None = None, **lora_kwargs) -> Adapter:
    """A real PEFT LoRA on `model` (a transformers model), read back into canonical form by hand
    (keys → module names, lora_A (r,in) / lora_B (out,r); embeddings lora_embedding_A/B)."""
    from peft import LoraConfig, get_peft_model
    from peft.utils import get_peft_model_state_dict
    cfg = LoraConfig(r=lora_kwargs.pop("r", 4), lora_alpha=lora_kwargs.pop("lora_alpha", 8), **lora_kwargs)
    pm = get_peft_model(model, cfg)
    state = {k: v.detach().float().numpy()
             for k, v in get_peft_model_state_dict(pm, save_embedding_layers=False).items()}
    mods: dict[str, ModuleDelta] = {}
    prefix = "base_model.model."
    for key in state:
        if key.endswith(".lora_A.weight"):
            name = key[len(prefix):-len(".lora_A.weight")]
            a, b = state[key], state[key.replace(".lora_A.", ".lora_B.")]
            mods[name] = ModuleDelta(name, "lora", b.shape[0], a.shape[1], a.shape[0], cfg.lora_alpha,
                                     cfg.lora_alpha / cfg.r, {"A": key, "B": key.replace(".lora_A.", ".lora_B.")})
        elif key.endswith(".lora_embedding_A"):
            name = key[len(prefix):-len(".lora_embedding_A")]
            a, b = state[key], state[key.replace("_A", "_B")]
            mods[name] = ModuleDelta(name, "embedding", a.shape[1], b.shape[0], a.shape[0], cfg.lora_alpha,
                                     cfg.lora_alpha / cfg.r, {"A": key, "B": key.replace("_A", "_B")})
        elif key.endswith(".weight") and ".lora_" not in key:   # modules_to_save / saved embeddings
            name = key[len(prefix):-len(".weight")].replace(".modules_to_save", "").replace(".base_layer", "")
            w = state[key]
            mods[name] = ModuleDelta(name, "full", w.shape[0], w.shape[1], 0, None, 1.0, {"weight": key})
    return Adapter(path=Path("peft-synthetic"), format_id="peft", modules=mods, source=DictSource(state),
                   architecture=architecture, base_model=base_model)
