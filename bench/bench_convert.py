"""Conversion benchmark: `loradeck convert` vs llama.cpp's convert_lora_to_gguf.py, side by side.

    .venv/bin/python bench/bench_convert.py [--layers 8] [--runs 3]

Same adapter (PEFT LoRA r=64 on every linear layer of a ~106M-parameter random Llama, bf16), same
output type (f16), each tool in a fresh process with its modules byte-compiled; medians of --runs. llama.cpp's converter gets the HF
config folder (`--base`, all it needs); LoRA Deck gets the GGUF base file (all it needs). Prints wall
time and peak RSS for both and the ratios (goals: ≤ 0.10× time, ≤ 0.25× memory), plus the floor:
merely reading the tensors with safetensors and writing them with gguf.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lora_bench_models import (  # noqa: E402
    REPO,
    adapter_r64,
    base_gguf,
    base_hf,
    compile_bytecode,
    llama_cpp_src,
    mb,
    measure,  # noqa: E402
    timed,
)

GOAL_TIME, GOAL_MEM = 0.10, 0.25

_FLOOR = r'''
import sys, numpy as np, gguf
from adapters_backend.formats.safetensors_io import SafetensorsSource   # safetensors layout, BF16 widened by numpy
src, out = SafetensorsSource(sys.argv[1]), sys.argv[2]
w = gguf.GGUFWriter(out, "llama")
for k in src.keys():
    w.add_tensor(k, src.read(k).astype(np.float16))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    print("preparing (cached after the first run):")
    hf = timed("HF base", lambda: base_hf(args.layers))
    gguf_base = timed("GGUF base (f16)", lambda: base_gguf(args.layers, "f16"))
    adapter = timed("r=64 adapter", lambda: adapter_r64(args.layers))
    src = llama_cpp_src()
    compile_bytecode(REPO / "adapters_backend", REPO / "plugins", src / "gguf-py", src / "convert_hf_to_gguf.py",
                     src / "convert_lora_to_gguf.py")
    size = sum(f.stat().st_size for f in adapter.iterdir())
    print(f"adapter: {adapter} ({mb(size)}); base: {gguf_base.name} ({mb(gguf_base.stat().st_size)})")

    py = sys.executable
    with tempfile.TemporaryDirectory(dir=gguf_base.parent) as tmp:
        out_theirs, out_ours = Path(tmp) / "theirs.gguf", Path(tmp) / "ours.gguf"
        theirs = [py, str(src / "convert_lora_to_gguf.py"), "--base", str(hf), "--outtype", "f16",
                  "--outfile", str(out_theirs), str(adapter)]
        ours = [py, "-m", "adapters_backend.cli", "convert", str(adapter), "--base", str(gguf_base),
                "-o", str(out_ours), "--outtype", "f16"]
        floor = [py, "-c", _FLOOR, str(adapter / "adapter_model.safetensors"), str(Path(tmp) / "floor.gguf")]
        rows = {}
        for label, cmd in (("llama.cpp convert_lora_to_gguf.py", theirs), ("loradeck convert", ours),
                           ("floor: safetensors read + gguf write", floor)):
            runs = [measure(cmd) for _ in range(args.runs)]
            rows[label] = (statistics.median(t for t, _ in runs), statistics.median(m for _, m in runs))
            print(f"  {label:<40} {rows[label][0]:6.2f} s  {mb(rows[label][1]):>8}", flush=True)
        t_theirs, m_theirs = rows["llama.cpp convert_lora_to_gguf.py"]
        t_ours, m_ours = rows["loradeck convert"]
        print()
        print(f"time   ratio ours/llama.cpp: {t_ours / t_theirs:.3f}  (goal ≤ {GOAL_TIME})"
              f"  {'OK' if t_ours / t_theirs <= GOAL_TIME else 'MISSED'}")
        print(f"memory ratio ours/llama.cpp: {m_ours / m_theirs:.3f}  (goal ≤ {GOAL_MEM})"
              f"  {'OK' if m_ours / m_theirs <= GOAL_MEM else 'MISSED'}")
        print(f"output sizes: llama.cpp {mb(out_theirs.stat().st_size)}, ours {mb(out_ours.stat().st_size)}")


if __name__ == "__main__":
    main()
