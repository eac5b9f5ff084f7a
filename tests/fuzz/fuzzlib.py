"""Fuzzing of every adapter reader, the base-model readers and the compatibility check.

Seeds are small valid adapters of each format and a matching tiny base model as a GGUF file and as
a Hugging Face folder (written here with safetensors/gguf/json directly, so the fuzzer does not
depend on torch). A case is either a mutation of one seed — truncation, bit flips, byte splices,
and structural edits of the safetensors header, the JSON configs, GGUF counts and zip directories —
or a structured hostile input (hostile_corpus.py: giant counts, infinities, pathological pattern
keys, nested archives, hostile models). Adapters are read through the public API, every tensor is
touched, the inspect report is built and the adapter is checked against the seed base model; a
model is loaded, its module names listed, its GGUF layout read, and the seed adapters are checked
against it. The only acceptable outcomes are success or a LoRA Deck error (BackendError); anything
else, or a case that runs past its time or memory budget, is a finding.

Used by tests/fuzz/test_fuzz_readers.py (a few hundred cases) and bench/fuzz_readers.py (10,000+).
"""
from __future__ import annotations

import gc
import json
import os
import random
import resource
import shutil
import signal
import struct
import time
import traceback
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fixtures.deadline import deadline

from adapters_backend.errors import BackendError

HIDDEN, LAYERS, RANK = 16, 2, 4


def _st_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """Serialize a safetensors file (done by hand so headers can be corrupted field by field)."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.float32: "F32", np.float16: "F16"}[arr.dtype.type]
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        blobs.append(arr.tobytes())
        offset += arr.nbytes
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(blobs)


def _rng_factors(rng: np.random.Generator, out: int, inp: int, r: int = RANK):
    return rng.standard_normal((r, inp)).astype(np.float32), rng.standard_normal((out, r)).astype(np.float32)


def _modules():
    for i in range(LAYERS):
        for proj in ("q_proj", "v_proj"):
            yield f"model.layers.{i}.self_attn.{proj}"


def write_seeds(root: Path) -> dict[str, Path]:
    """Write one valid adapter per format under `root`; returns {kind: path}."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    seeds: dict[str, Path] = {}

    peft = root / "peft"
    peft.mkdir(exist_ok=True)
    tensors = {}
    for m in _modules():
        a, b = _rng_factors(rng, HIDDEN, HIDDEN)
        tensors[f"base_model.model.{m}.lora_A.weight"] = a
        tensors[f"base_model.model.{m}.lora_B.weight"] = b
    (peft / "adapter_model.safetensors").write_bytes(_st_bytes(tensors))
    (peft / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "tiny/llama",
        "r": RANK, "lora_alpha": 8, "use_rslora": False, "use_dora": False,
        "target_modules": ["q_proj", "v_proj"], "rank_pattern": {}, "alpha_pattern": {"v_proj": 16},
        "fan_in_fan_out": False, "bias": "none"}))
    seeds["peft"] = peft

    ludwig = root / "ludwig"
    shutil.copytree(peft, ludwig / "model_weights", dirs_exist_ok=True)
    (ludwig / "model_hyperparameters.json").write_text(json.dumps({
        "model_type": "llm", "base_model": "tiny/llama",
        "adapter": {"type": "lora", "r": RANK, "alpha": 8, "dropout": 0.05}}))
    seeds["ludwig"] = ludwig

    kohya = {}
    for m in _modules():
        stem = "lora_te_" + m.replace(".", "_")
        a, b = _rng_factors(rng, HIDDEN, HIDDEN)
        kohya[f"{stem}.lora_down.weight"] = a
        kohya[f"{stem}.lora_up.weight"] = b
        kohya[f"{stem}.alpha"] = np.array(2.0, np.float32)
    seeds["kohya"] = root / "kohya.safetensors"
    seeds["kohya"].write_bytes(_st_bytes(kohya, {"ss_network_module": "networks.lora", "ss_network_dim": str(RANK)}))

    import gguf  # light: numpy only

    seeds["gguf"] = root / "lora.gguf"
    w = gguf.GGUFWriter(str(seeds["gguf"]), arch="llama")
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, 8.0)
    for i in range(LAYERS):
        for name in ("attn_q", "attn_v"):
            a, b = _rng_factors(rng, HIDDEN, HIDDEN)
            w.add_tensor(f"blk.{i}.{name}.weight.lora_a", a)
            w.add_tensor(f"blk.{i}.{name}.weight.lora_b", b)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    seeds["zip"] = root / "peft.zip"
    with zipfile.ZipFile(seeds["zip"], "w") as zf:
        for f in peft.iterdir():
            zf.write(f, f"adapter/{f.name}")

    # The base the adapters were made for: a Llama of HIDDEN width, LAYERS blocks, 4 heads (no GQA).
    shapes = {"token_embd": (32, HIDDEN), "output_norm": (HIDDEN,), "output": (32, HIDDEN)}
    hf_names = {"token_embd": "model.embed_tokens", "output_norm": "model.norm", "output": "lm_head"}
    for b in range(LAYERS):
        for g, h in (("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"), ("attn_v", "self_attn.v_proj"),
                     ("attn_output", "self_attn.o_proj")):
            shapes[f"blk.{b}.{g}"], hf_names[f"blk.{b}.{g}"] = (HIDDEN, HIDDEN), f"model.layers.{b}.{h}"
        for g, h, shape in (("ffn_gate", "mlp.gate_proj", (32, HIDDEN)), ("ffn_up", "mlp.up_proj", (32, HIDDEN)),
                            ("ffn_down", "mlp.down_proj", (HIDDEN, 32))):
            shapes[f"blk.{b}.{g}"], hf_names[f"blk.{b}.{g}"] = shape, f"model.layers.{b}.{h}"
    seeds["model_gguf"] = root / "model.gguf"
    w = gguf.GGUFWriter(str(seeds["model_gguf"]), arch="llama")
    w.add_name("fuzz base")
    w.add_block_count(LAYERS)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(32)
    w.add_head_count(4)
    w.add_head_count_kv(4)
    w.add_base_model_count(1)
    w.add_base_model_repo_url(0, "https://huggingface.co/tiny/llama")
    w.add_token_list([f"<t{i}>" for i in range(32)])
    for name, shape in shapes.items():
        w.add_tensor(f"{name}.weight", np.zeros(shape, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    hf = root / "model-hf"
    hf.mkdir(exist_ok=True)
    (hf / "config.json").write_text(json.dumps({
        "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": HIDDEN,
        "num_hidden_layers": LAYERS, "num_attention_heads": 4, "num_key_value_heads": 4,
        "intermediate_size": 32, "vocab_size": 32, "tie_word_embeddings": False}))
    (hf / "model.safetensors").write_bytes(_st_bytes({f"{hf_names[n]}.weight": np.zeros(s, np.float32)
                                                      for n, s in shapes.items()}))
    seeds["model_hf"] = hf
    return seeds


# --------------------------------------------------------------------------------------- mutations
def _flip_bits(data: bytearray, rng: random.Random, region: tuple[int, int] | None = None) -> None:
    lo, hi = region or (0, len(data))
    for _ in range(rng.randint(1, 8)):
        if hi > lo:
            i = rng.randrange(lo, hi)
            data[i] ^= 1 << rng.randrange(8)


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    d = bytearray(data)
    op = rng.randrange(7)
    if op == 0 and d:                                     # truncate
        return bytes(d[:rng.randrange(len(d))])
    if op == 1:                                           # flip bits anywhere
        _flip_bits(d, rng)
    elif op == 2:                                         # flip bits in the first 512 bytes (headers)
        _flip_bits(d, rng, (0, min(512, len(d))))
    elif op == 3 and len(d) > 8:                          # overwrite a u64 with a huge or odd value
        i = rng.randrange(0, min(len(d) - 8, 256))
        d[i:i + 8] = struct.pack("<Q", rng.choice([2**63 - 1, 2**32 + 7, 0, 1, 2**40, 0xFFFFFFFF]))
    elif op == 4 and d:                                   # duplicate a chunk
        i, j = sorted(rng.randrange(len(d)) for _ in range(2))
        d[i:i] = d[i:j][:4096]
    elif op == 5:                                         # append junk
        d += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    else:                                                 # zero a range
        if d:
            i = rng.randrange(len(d))
            d[i:i + rng.randrange(1, 64)] = bytes(min(len(d) - i, 64))[: len(d[i:i + 64])]
    return bytes(d)


_JSON_VALUES = [None, -1, 0, 1e308, float("nan"), "x", "", [], {}, [1, 2], {"a": 1}, True, 2**63, "q_proj",
                ".*", "(", "LORA", "LOHA", "IA3", 1e-300]


def _mutate_json(text: str, rng: random.Random) -> str:
    try:
        obj = json.loads(text)
    except ValueError:
        return text[: rng.randrange(len(text) + 1)]
    if not isinstance(obj, dict) or rng.random() < 0.1:
        return rng.choice(["[]", "null", "1", '"s"', text[: len(text) // 2], "{" * 5000])
    keys = list(obj)
    op = rng.randrange(3)
    if op == 0 and keys:
        del obj[rng.choice(keys)]
    elif op == 1 and keys:
        obj[rng.choice(keys)] = rng.choice(_JSON_VALUES)
    else:
        obj[rng.choice(keys + ["extra"])] = rng.choice(_JSON_VALUES)
    return json.dumps(obj, allow_nan=True)


def _mutate_st_header(data: bytes, rng: random.Random) -> bytes:
    """Structural edits of a safetensors header: dtype, shape, offsets, NaN data."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = bytearray(data[8 + n:])
    names = [k for k in header if k != "__metadata__"]
    if not names:
        return data
    name = rng.choice(names)
    info = header[name]
    op = rng.randrange(6)
    if op == 0:
        info["dtype"] = rng.choice(["F64", "I8", "BOOL", "F8_E4M3", "Q4", "", "BF16", "F16"])
    elif op == 1:
        info["shape"] = rng.choice([[], [0], [2**31, 2**31], [-1, 4], [1] * 40, [4, 4, 4], "x", [1.5]])
    elif op == 2:
        info["data_offsets"] = rng.choice([[0, 2**62], [10, 5], [-8, 8], [0], None, [0, len(body) + 1]])
    elif op == 3:                                     # NaN / inf data in a float tensor
        b, e = info["data_offsets"]
        if info["dtype"] == "F32" and e > b:
            arr = np.frombuffer(bytes(body[b:e]), np.float32).copy()
            arr[rng.randrange(arr.size)] = rng.choice([np.nan, np.inf, -np.inf])
            body[b:e] = arr.tobytes()
    elif op == 4:                                     # remove the partner tensor
        del header[name]
    else:
        header["__metadata__"] = rng.choice([{"a": 1}, [], "x", {"ss_network_args": "{"}])
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(body)


def mutate_case(seeds: dict[str, Path], case_dir: Path, rng: random.Random) -> tuple[str, Path]:
    """Copy one seed into `case_dir` and mutate one of its files; returns (description, path to read)."""
    kind = rng.choice(sorted(seeds))
    src = seeds[kind]
    dst = case_dir / src.name
    if src.is_dir():
        shutil.copytree(src, dst)
        files = sorted(p for p in dst.rglob("*") if p.is_file())
        target = rng.choice(files)
    else:
        shutil.copy2(src, dst)
        target = dst
    data = target.read_bytes()
    if target.suffix == ".json":
        target.write_text(_mutate_json(data.decode(), rng))
        how = "json"
    elif target.suffix == ".safetensors" and rng.random() < 0.5:
        target.write_bytes(_mutate_st_header(data, rng))
        how = "st-header"
    else:
        target.write_bytes(_mutate_bytes(data, rng))
        how = "bytes"
    return f"{kind}:{target.relative_to(case_dir)}:{how}", dst


class CaseTimeout(BaseException):
    """Not an Exception, so no reader's `except Exception` (plugin fault isolation) can swallow it."""


@dataclass
class Outcome:
    description: str
    result: str            # "ok", "error", or "FINDING"
    detail: str = ""
    seconds: float = 0.0           # wall-clock time of the case
    cpu_seconds: float = 0.0       # CPU time of the process that ran it (isolated runs)
    max_rss_mb: float = 0.0


_SEED_ADAPTERS: dict = {}


def _seed_adapters(seeds: dict[str, Path]) -> dict:
    """The valid seed adapters, read once per process (forked children inherit them, and every module
    a case needs, imported here: a child never imports from disk)."""
    import adapters_backend.core.compat  # noqa: F401
    import adapters_backend.gguf.header  # noqa: F401
    import adapters_backend.report.inspect  # noqa: F401
    from adapters_backend.formats.registry import read_adapter
    if not _SEED_ADAPTERS:
        for kind in ("peft", "kohya", "gguf"):
            _SEED_ADAPTERS[kind] = read_adapter(seeds[kind])
    return _SEED_ADAPTERS


def _exercise_adapter(path: Path, seeds: dict[str, Path] | None) -> None:
    from adapters_backend.core.compat import check_compatibility
    from adapters_backend.formats.registry import read_adapter
    from adapters_backend.report.inspect import inspect_adapter

    adapter = read_adapter(path)
    for mod in adapter:
        adapter.tensors(mod)
    inspect_adapter(path, adapter=adapter)
    if seeds is not None:
        for engine in ("llama.cpp", "torch"):
            check_compatibility(adapter, seeds["model_gguf"], engine=engine).as_dict()


def _exercise_model(path: Path, seeds: dict[str, Path]) -> None:
    from adapters_backend.core.base_model import load_base_model
    from adapters_backend.core.compat import check_compatibility
    from adapters_backend.formats.registry import read_adapter

    base = load_base_model(path)
    base.module_names()
    base.summary()
    for adapter in _seed_adapters(seeds).values():
        for engine in ("llama.cpp", "torch"):
            check_compatibility(adapter, base, engine=engine).as_dict()
    read_adapter(seeds["kohya"], base=base)      # Kohya names resolved through the base's module names
    read_adapter(seeds["gguf"], base=base)       # GGUF rows put back in order with the base's head counts


def run_case(description: str, path: Path, seconds: float = 10.0, seeds: dict[str, Path] | None = None) -> Outcome:
    """Exercise `path` through the public API (see the module docstring); classify the outcome.
    Without `seeds`, adapters are only read and inspected, and models cannot be run."""
    kind = description.split(":", 1)[0]
    start = time.perf_counter()
    try:
        with deadline(seconds, CaseTimeout):
            if kind.startswith("model"):
                _exercise_model(path, seeds)
            else:
                _exercise_adapter(path, seeds)
        return Outcome(description, "ok", seconds=time.perf_counter() - start)
    except BackendError as exc:
        msg = str(exc)
        if not msg.strip():
            return Outcome(description, "FINDING", "empty error message")
        return Outcome(description, "error", msg[:200], seconds=time.perf_counter() - start)
    except CaseTimeout as exc:
        return Outcome(description, "FINDING", f"hang: {exc}", seconds=time.perf_counter() - start)
    except Exception:  # noqa: BLE001 - that is the finding
        return Outcome(description, "FINDING", traceback.format_exc(limit=8), seconds=time.perf_counter() - start)


def _address_space() -> int:
    """Bytes of address space this process has mapped (Linux; 0 elsewhere). A test process that has
    imported torch and Qt has gigabytes reserved before a case starts."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run_case_isolated(description: str, path: Path, seeds: dict[str, Path], seconds: float = 2.0,
                      mem_bytes: int = 1 << 30, wall_seconds: float = 60.0) -> Outcome:
    """`run_case` in a forked child limited to `seconds` of CPU time and `mem_bytes` of address space
    beyond what the process had already mapped (and `wall_seconds` of wall-clock time, for a case
    that blocks without computing). CPU time, not
    wall time, is what a file makes LoRA Deck spend; on a shared machine wall time also measures the
    neighbours. A child that does not answer (stuck outside Python, killed by a limit) is a finding
    too. POSIX only; elsewhere the case runs in this process with a wall-clock limit."""
    if not hasattr(os, "fork"):
        return run_case(description, path, seconds, seeds)
    _seed_adapters(seeds)                          # read once here, shared with every child
    read_fd, write_fd = os.pipe()
    # The parent's objects go to a generation the child's garbage collector never walks: walking them
    # writes to every page of the parent's heap, and those copy-on-write faults were charged to the
    # case (a 0.8 s case took 2-10 s of CPU time after a few hundred tests had grown the heap).
    gc.freeze()
    pid = os.fork()
    if pid == 0:                                   # the child: limits, the case, the outcome, _exit
        code = 0
        os.close(read_fd)
        try:
            limit = _address_space() + mem_bytes  # the case's own budget, whatever the parent had mapped
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            cpu = max(1, round(seconds))
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))

            def _cpu_spent(signum, frame):
                raise CaseTimeout(f"used more than {cpu} s of CPU time")
            signal.signal(signal.SIGXCPU, _cpu_spent)
            outcome = run_case(description, path, wall_seconds, seeds)
        except BaseException as exc:  # noqa: BLE001 - a limit hit while the outcome was being written up
            outcome = Outcome(description, "FINDING", f"{type(exc).__name__} in the case: {exc}"[:300])
        try:
            with os.fdopen(write_fd, "w") as f:
                json.dump(outcome.__dict__, f)
        except BaseException:  # noqa: BLE001 - report through the exit status; never return into the parent's code
            code = 70
        os._exit(code)
    gc.unfreeze()
    os.close(write_fd)
    deadline = time.monotonic() + wall_seconds + 10
    status, usage = None, None
    while time.monotonic() < deadline:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got:
            break
        time.sleep(0.002)
    else:
        os.kill(pid, signal.SIGKILL)
        _, status, usage = os.wait4(pid, 0)
        os.close(read_fd)
        return Outcome(description, "FINDING", f"hang: no answer after {wall_seconds + 10:.0f} s (killed)")
    with os.fdopen(read_fd) as f:
        text = f.read()
    cpu_seconds = usage.ru_utime + usage.ru_stime
    rss_mb = usage.ru_maxrss / 1024                # Linux: kB
    if not text:
        return Outcome(description, "FINDING", f"the child died (wait status {status}) without an outcome",
                       cpu_seconds=cpu_seconds, max_rss_mb=rss_mb)
    outcome = Outcome(**json.loads(text))
    outcome.cpu_seconds, outcome.max_rss_mb = cpu_seconds, rss_mb
    return outcome
