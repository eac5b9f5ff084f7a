"""Models and adapters for bench_convert.py / bench_merge.py, made once and cached.

    base_hf(layers)          random-init Llama HF folder (bf16 safetensors), hidden 768, FFN 2048,
                             vocab 32000, 12 heads (4 KV heads): ~106M parameters with 8 layers
    base_gguf(layers, type)  that model converted by llama.cpp's convert_hf_to_gguf.py (f32/f16/q8_0)
    adapter_r64(layers)      a PEFT LoRA r=64 on every linear layer (q,k,v,o,gate,up,down), random
                             non-zero factors, bf16 — the kind of adapter people download
    measure(cmd) -> (seconds, peak RSS bytes)   a child process's wall time and peak resident memory

Cache: $LORADECK_BENCH_CACHE (default <tmp>/loradeck-bench).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HIDDEN, FFN, VOCAB, HEADS, KV_HEADS = 768, 2048, 32000, 12, 4


def cache() -> Path:
    p = Path(os.environ.get("LORADECK_BENCH_CACHE") or Path(tempfile.gettempdir()) / "loradeck-bench")
    p.mkdir(parents=True, exist_ok=True)
    return p


def llama_cpp_src() -> Path:
    src = Path(os.environ.get("LORADECK_LLAMA_CPP_SRC", REPO / ".cache" / "llama.cpp"))
    if not (src / "convert_hf_to_gguf.py").exists():
        sys.exit(f"llama.cpp sources not found at {src} (set LORADECK_LLAMA_CPP_SRC)")
    return src


def _spm_tokenizer(folder: Path) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.tiny_gguf import _write_spm  # a small SentencePiece model; the vocab is padded to VOCAB
    _write_spm(folder)


def base_hf(layers: int = 8) -> Path:
    dest = cache() / f"llama-{layers}L-hf"
    if (dest / "model.safetensors").exists():
        return dest
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dest.mkdir(parents=True, exist_ok=True)
    cfg = LlamaConfig(hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=layers,
                      num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, vocab_size=VOCAB,
                      max_position_embeddings=2048, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(dest)
    _spm_tokenizer(dest)
    return dest


def base_gguf(layers: int = 8, outtype: str = "f16") -> Path:
    dest = cache() / f"llama-{layers}L-{outtype}.gguf"
    if dest.exists():
        return dest
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.tiny_gguf import convert_hf_folders
    tmp = dest.with_suffix(".tmp.gguf")
    convert_hf_folders([(base_hf(layers), tmp)], outtype=outtype, timeout=3600)
    os.replace(tmp, dest)
    return dest


def adapter_r64(layers: int = 8) -> Path:
    dest = cache() / f"llama-{layers}L-lora-r64"
    if (dest / "adapter_model.safetensors").exists():
        return dest
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_hf(layers), dtype=torch.bfloat16)
    pm = get_peft_model(model, LoraConfig(r=64, lora_alpha=128, target_modules="all-linear"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in pm.named_parameters():
            if "lora_" in name:
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    pm.save_pretrained(dest)
    cfg = json.loads((dest / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base_hf(layers))
    (dest / "adapter_config.json").write_text(json.dumps(cfg, indent=2))
    return dest


_MEASURE = r'''
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
dt = time.perf_counter() - t
print(f"{rc} {dt} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}", file=sys.stderr)
'''


def measure(cmd: list[str]) -> tuple[float, int]:
    """Wall time and peak RSS (bytes) of `cmd`, run as the only child of a fresh process."""
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True)
    last = proc.stderr.strip().splitlines()[-1]
    rc, dt, kb = last.split()
    if int(rc) != 0:
        sys.exit(f"command failed ({rc}): {' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return float(dt), int(kb) * 1024


def compile_bytecode(*paths: Path) -> None:
    """Byte-compile both sides of a comparison before timing it, as an installed copy is: where
    PYTHONDONTWRITEBYTECODE is set (this machine) every run would otherwise compile its modules again."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", *map(str, paths)], check=True,
                   stdout=subprocess.DEVNULL)


def mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


def timed(label: str, fn):
    t = time.perf_counter()
    out = fn()
    print(f"  {label}: {time.perf_counter() - t:.1f} s", flush=True)
    return out
