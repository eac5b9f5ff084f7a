"""Structured hostile inputs for the fuzzer: files built the way an attacker (or a broken tool) would
build them, not random damage. Each generator writes one case from a pool of values chosen to
trigger unbounded work or unexpected types: giant counts, indices and strings, infinities and NaN,
pathological rank/alpha pattern keys, nested and self-similar archives, names Windows cannot hold,
and GGUF / Hugging Face *models* as well as adapters (base-model reading and the compatibility
check run on files from the internet too).

`hostile_case(seeds, case_dir, rng) -> (description, path)`; the description starts with the kind
("peft", "kohya", "gguf", "ludwig", "zip", "model_gguf", "model_hf") so `fuzzlib.run_case` knows
what to do with it.
"""
from __future__ import annotations

import io
import json
import random
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np

HIDDEN, RANK = 16, 4
INF, NAN = float("inf"), float("nan")
GIANT_INTS = [2**63 - 1, 2**63, 2**64 - 1, 2**40, 2**32 + 7, 300_000_000, 10**18, 4096, 65537]
GIANT_INDICES = ["300000000", str(2**40), str(2**63), "9" * 5000, "0" * 3000 + "1", "12345678901234567890"]
BAD_NUMBERS = [INF, -INF, NAN, 1e308, -1, 0, 2**63, 10**300, "8", [8], {"r": 8}, True, None, 1e-310]
# Keys that make a backtracking regex engine take exponential or high-polynomial time, and keys
# outside module-name syntax.
EVIL_KEYS = [r"(a+)+$", r"(a|aa)*c", r"(.*)*x", r"(x+x+)+y", r"((a*)*)*b", r"(\w+\s?)+$", r"(.*a){25}",
             r"([a-z]+\.?)*_proj_lora", r"((((a{30}){30}){30}){30})", r"(?=a)", r"(a)\1", "a" * 700, "(", "*",
             r"(.*\.)*q_proj", r"(a|a?)+$", r"(\d+\.?)+!"]


# --------------------------------------------------------------------------------- safetensors
def st_bytes(header: dict | str, data: bytes = b"", declared_len: int | None = None) -> bytes:
    raw = header.encode() if isinstance(header, str) else json.dumps(header, allow_nan=True).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw) if declared_len is None else declared_len) + raw + data


def st_tensors(tensors: dict[str, np.ndarray], metadata: dict | None = None) -> bytes:
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr, np.float32)
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        blobs.append(arr.tobytes())
        offset += arr.nbytes
    if metadata:
        header["__metadata__"] = metadata
    return st_bytes(header, b"".join(blobs))


def _lora_pair(prefix: str, out_f: int = HIDDEN, in_f: int = HIDDEN, r: int = RANK) -> dict[str, np.ndarray]:
    return {f"{prefix}.lora_A.weight": np.full((r, in_f), 0.01, np.float32),
            f"{prefix}.lora_B.weight": np.full((out_f, r), 0.01, np.float32)}


def _peft_folder(case_dir: Path, tensors: bytes, config: dict | str) -> Path:
    folder = case_dir / "peft"
    folder.mkdir()
    (folder / "adapter_model.safetensors").write_bytes(tensors)
    text = config if isinstance(config, str) else json.dumps(config, allow_nan=True)
    (folder / "adapter_config.json").write_text(text)
    return folder


def _config(**over) -> dict:
    cfg = {"peft_type": "LORA", "r": RANK, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"],
           "base_model_name_or_path": "tiny/llama"}
    cfg.update(over)
    return cfg


# ---------------------------------------------------------------------------------------- PEFT
def peft_giant_layer(case_dir: Path, rng: random.Random, seeds) -> Path:
    index = rng.choice(GIANT_INDICES)
    template = rng.choice(["model.layers.{}.self_attn.q_proj", "model.layers.0.block_sparse_moe.experts.{}.w1",
                           "transformer.h.{}.attn.c_attn", "model.layers.{}.mlp.down_proj"])
    t = {**_lora_pair("base_model.model.model.layers.0.self_attn.q_proj"),
         **_lora_pair("base_model.model." + template.format(index))}
    return _peft_folder(case_dir, st_tensors(t), _config())


def peft_long_name(case_dir: Path, rng: random.Random, seeds) -> Path:
    filler = rng.choice(["a", ".", "1", "_", "a."]) * rng.choice([10_000, 100_000, 400_000])
    t = _lora_pair(f"base_model.model.model.layers.0.{filler}.q_proj")
    cfg = _config(alpha_pattern={rng.choice(EVIL_KEYS[:8]): 4}) if rng.random() < 0.5 else _config()
    return _peft_folder(case_dir, st_tensors(t), cfg)


def peft_many_modules(case_dir: Path, rng: random.Random, seeds) -> Path:
    n = rng.choice([2000, 5000])
    t = {}
    for i in range(n):
        t.update(_lora_pair(f"base_model.model.model.layers.{i}.self_attn.q_proj", 2, 2, 1))
    cfg = _config(r=1, rank_pattern={f"model.layers.{i}.self_attn.q_proj": 1 for i in range(0, n, 2)}
                  if rng.random() < 0.5 else {})
    return _peft_folder(case_dir, st_tensors(t), cfg)


def peft_config_values(case_dir: Path, rng: random.Random, seeds) -> Path:
    t = {**_lora_pair("base_model.model.model.layers.0.self_attn.q_proj"),
         **_lora_pair("base_model.model.model.layers.1.self_attn.v_proj")}
    field = rng.choice(["r", "lora_alpha", "peft_type", "use_rslora", "use_dora", "init_r", "target_modules",
                        "rank_pattern", "alpha_pattern", "base_model_name_or_path", "fan_in_fan_out"])
    value = rng.choice(BAD_NUMBERS)
    cfg = _config(**{field: value})
    if rng.random() < 0.3:
        cfg["peft_type"] = rng.choice(["ADALORA", "LOHA", "LOKR"])
    text = json.dumps(cfg, allow_nan=True, default=str)
    if rng.random() < 0.3:                     # numbers Python's json turns into inf, or refuses to int()
        text = text.replace(f'"r": {RANK}', rng.choice(['"r": 1e999', '"r": ' + "7" * 5000, '"r": -1e999']))
    return _peft_folder(case_dir, st_tensors(t), text)


def peft_patterns(case_dir: Path, rng: random.Random, seeds) -> Path:
    name = "model.layers.0.self_attn." + rng.choice(["a" * 60 + "!", "a" * 40 + "b", "x" * 80, "q_proj"])
    t = _lora_pair(f"base_model.model.{name}")
    which = rng.choice(["rank_pattern", "alpha_pattern"])
    if rng.random() < 0.2:
        keys = {f"k{i}.*x{i}": 4 for i in range(rng.choice([5000, 10_001]))}
    else:
        keys = {rng.choice(EVIL_KEYS): RANK for _ in range(rng.randint(1, 4))}
    return _peft_folder(case_dir, st_tensors(t), _config(**{which: keys}))


def safetensors_header(case_dir: Path, rng: random.Random, seeds) -> Path:
    good = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight":
            {"dtype": "F32", "shape": [RANK, HIDDEN], "data_offsets": [0, RANK * HIDDEN * 4]}}
    data = b"\0" * (RANK * HIDDEN * 4)
    op = rng.randrange(9)
    if op == 0:
        good_entry = next(iter(good.values()))
        good_entry["shape"] = [rng.choice(GIANT_INTS), rng.choice(GIANT_INTS)]
        raw = st_bytes(good, data)
    elif op == 1:
        next(iter(good.values()))["data_offsets"] = [0, rng.choice(GIANT_INTS)]
        raw = st_bytes(good, data)
    elif op == 2:
        raw = st_bytes(good, data, declared_len=rng.choice(GIANT_INTS))
    elif op == 3:                                  # 100k entries sharing the same bytes
        many = {f"base_model.model.model.layers.{i}.self_attn.q_proj.lora_{'AB'[i % 2]}.weight":
                {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]} for i in range(100_000)}
        raw = st_bytes(many, b"\0" * 4)
    elif op == 4:
        raw = st_bytes('{"t": ' + "[" * 50_000 + "]" * 50_000 + "}", data)
    elif op == 5:
        raw = st_bytes('{"t": {"dtype": "F32", "shape": [' + "9" * 5000 + '], "data_offsets": [0, 4]}}', data)
    elif op == 6:
        raw = st_bytes('{"\\ud800.lora_A.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', data)
    elif op == 7:
        raw = st_bytes({"__metadata__": {"ss_network_args": "[" * 50_000}, **good}, data)
    else:
        next(iter(good.values()))["dtype"] = rng.choice(["F8_E4M3", "Q4", "", None, 5, "I64", "BOOL"])
        raw = st_bytes(good, data)
    return _peft_folder(case_dir, raw, _config())


# --------------------------------------------------------------------------------- Kohya, Ludwig
def kohya_hostile(case_dir: Path, rng: random.Random, seeds) -> Path:
    t, meta = {}, {"ss_network_module": "networks.lora"}
    op = rng.randrange(4)
    blocks = [0, 1]
    if op == 0:
        blocks.append(rng.choice(GIANT_INDICES))
    elif op == 1:
        blocks = list(range(rng.choice([3000, 6000])))
    for b in blocks:
        stem = f"lora_unet_model_layers_{b}_self_attn_q_proj"
        t[f"{stem}.lora_down.weight"] = np.full((RANK, HIDDEN), 0.01, np.float32)
        t[f"{stem}.lora_up.weight"] = np.full((HIDDEN, RANK), 0.01, np.float32)
        t[f"{stem}.alpha"] = np.array(rng.choice([2.0, INF, NAN, -INF, 0.0]) if op == 2 else 2.0, np.float32)
    if op == 3:
        meta["ss_network_args"] = rng.choice(["[" * 50_000, "9" * 5000, '{"a": 1e999}', "\\ud800"])
        meta["ss_network_dim"] = "9" * 5000
    path = case_dir / "kohya.safetensors"
    path.write_bytes(st_tensors(t, meta))
    return path


def ludwig_hostile(case_dir: Path, rng: random.Random, seeds) -> Path:
    folder = case_dir / "ludwig"
    (folder / "model_weights").mkdir(parents=True)
    t = {**_lora_pair("base_model.model.model.layers.0.self_attn.q_proj")}
    (folder / "model_weights" / "adapter_model.safetensors").write_bytes(st_tensors(t))
    section = {"type": "lora", "r": RANK, "alpha": 8}
    section[rng.choice(["r", "alpha", "type", "rank_pattern", "alpha_pattern"])] = \
        rng.choice(BAD_NUMBERS + [{rng.choice(EVIL_KEYS): 4}])
    hyper = {"model_type": "llm", "base_model": "tiny/llama", "adapter": section,
             "quantization": rng.choice([None, {"bits": INF}, {"bits": "9" * 100}, [], "x"])}
    (folder / "model_hyperparameters.json").write_text(json.dumps(hyper, allow_nan=True, default=str))
    return folder


# ---------------------------------------------------------------------------------------- GGUF
T_U32, T_F32, T_STR, T_ARR, T_U64, T_F64 = 4, 6, 8, 9, 10, 12


def gs(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return gs(key) + struct.pack("<I", vtype) + payload


def kv_str(key: str, value: str) -> bytes:
    return kv(key, T_STR, gs(value))


def kv_num(key: str, value) -> bytes:
    if isinstance(value, float):
        return kv(key, T_F64, struct.pack("<d", value))
    if value < 0:
        return kv(key, 5, struct.pack("<i", max(value, -2**31)))
    return kv(key, T_U64, struct.pack("<Q", value % 2**64))


def tensor_info(name: str, ne: tuple[int, ...], ggml_type: int, offset: int) -> bytes:
    return gs(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d % 2**64) for d in ne) \
        + struct.pack("<IQ", ggml_type, offset % 2**64)


def raw_gguf(kvs: list[bytes], infos: list[bytes], data: bytes = b"", n_kv: int | None = None,
             n_tensors: int | None = None) -> bytes:
    head = b"GGUF" + struct.pack("<IQQ", 3, len(infos) if n_tensors is None else n_tensors % 2**64,
                                 len(kvs) if n_kv is None else n_kv % 2**64)
    body = head + b"".join(kvs) + b"".join(infos)
    return body + b"\0" * (-len(body) % 32) + data


def _adapter_tensors() -> tuple[list[bytes], bytes]:
    """lora_a (r, in) / lora_b (out, r) f32 for blk.0.attn_q: ggml ne is the reversed numpy shape."""
    a = np.full((RANK, HIDDEN), 0.01, np.float32).tobytes()
    infos = [tensor_info("blk.0.attn_q.weight.lora_a", (HIDDEN, RANK), 0, 0),
             tensor_info("blk.0.attn_q.weight.lora_b", (RANK, HIDDEN), 0, len(a))]
    return infos, a + a


def gguf_adapter_hostile(case_dir: Path, rng: random.Random, seeds) -> Path:
    base_kvs = [kv_str("general.architecture", "llama"), kv_str("general.type", "adapter"),
                kv_str("adapter.type", "lora")]
    infos, data = _adapter_tensors()
    op = rng.randrange(10)
    kvs, n_kv, n_tensors = list(base_kvs), None, None
    if op == 0:
        n_kv = rng.choice(GIANT_INTS)
    elif op == 1:
        n_tensors = rng.choice(GIANT_INTS)
    elif op == 2:                                   # a string whose length runs past the file
        kvs.append(gs("general.name") + struct.pack("<I", T_STR) + struct.pack("<Q", rng.choice(GIANT_INTS)))
    elif op == 3:                                   # an array claiming 2^63 entries
        kvs.append(kv("adapter.alora.invocation_tokens", T_ARR,
                      struct.pack("<IQ", rng.choice([T_U32, T_STR, T_ARR]), rng.choice(GIANT_INTS))))
    elif op == 4:                                   # arrays nested thousands deep
        depth = rng.choice([9, 100, 5000])
        kvs.append(gs("evil.nested") + struct.pack("<I", T_ARR) + struct.pack("<IQ", T_ARR, 1) * (depth - 1)
                   + struct.pack("<IQ", T_U32, 0))
    elif op == 5:
        kvs.append(kv_num("adapter.lora.alpha", rng.choice([INF, -INF, NAN, 1e308])))
    elif op == 6:                                   # tensor dims of 2^63, or 2^32 dimensions
        ne = rng.choice([(2**63, RANK), (HIDDEN, 2**40), (2**32, 2**32), (0, RANK)])
        infos = [tensor_info("blk.0.attn_q.weight.lora_a", ne, 0, 0), infos[1]]
        if rng.random() < 0.3:
            infos[1] = gs("blk.0.attn_q.weight.lora_b") + struct.pack("<I", 2**31) + b"\0" * 16
    elif op == 7:                                   # unknown type, offsets past the end
        infos = [tensor_info("blk.0.attn_q.weight.lora_a", (HIDDEN, RANK), rng.choice([99, 2**31, 38]),
                             rng.choice([0, 2**62])), infos[1]]
    elif op == 8:
        kvs.append(kv("general.alignment", rng.choice([T_U32, T_F32]),
                      struct.pack("<I", rng.choice([0, 3, 2**31])) if rng.random() < 0.7 else struct.pack("<f", 1.5)))
    else:                                           # a giant block number in a tensor name
        big = rng.choice(GIANT_INDICES)
        infos = [tensor_info(f"blk.{big}.attn_q.weight.lora_a", (HIDDEN, RANK), 0, 0),
                 tensor_info(f"blk.{big}.attn_q.weight.lora_b", (RANK, HIDDEN), 0, RANK * HIDDEN * 4)]
    path = case_dir / "lora.gguf"
    path.write_bytes(raw_gguf(kvs, infos, data, n_kv=n_kv, n_tensors=n_tensors))
    return path


def _model_kvs(overrides: dict[str, bytes]) -> list[bytes]:
    kvs = {"general.architecture": kv_str("general.architecture", "llama"),
           "general.name": kv_str("general.name", "hostile"),
           "llama.block_count": kv_num("llama.block_count", 2),
           "llama.embedding_length": kv_num("llama.embedding_length", HIDDEN),
           "llama.feed_forward_length": kv_num("llama.feed_forward_length", 32),
           "llama.attention.head_count": kv_num("llama.attention.head_count", 4),
           "llama.attention.head_count_kv": kv_num("llama.attention.head_count_kv", 4)}
    kvs.update(overrides)
    return list(kvs.values())


def _model_tensors(n_layers: int = 2) -> tuple[list[bytes], bytes]:
    shapes = {"token_embd.weight": (HIDDEN, 32), "output_norm.weight": (HIDDEN,), "output.weight": (HIDDEN, 32)}
    for b in range(n_layers):
        for t in ("attn_q", "attn_k", "attn_v", "attn_output"):
            shapes[f"blk.{b}.{t}.weight"] = (HIDDEN, HIDDEN)
        shapes[f"blk.{b}.ffn_up.weight"] = (HIDDEN, 32)
        shapes[f"blk.{b}.ffn_down.weight"] = (32, HIDDEN)
    infos, offset = [], 0
    for name, ne in shapes.items():
        infos.append(tensor_info(name, ne, 0, offset))
        n = int(np.prod(ne)) * 4
        offset += n + (-n % 32)
    return infos, b"\0" * offset


def gguf_model_hostile(case_dir: Path, rng: random.Random, seeds) -> Path:
    key = rng.choice(["llama.block_count", "llama.expert_count", "general.base_model.count",
                      "llama.attention.head_count", "llama.attention.key_length", "llama.embedding_length",
                      "llama.vocab_size", "general.file_type", "llama.expert_feed_forward_length"])
    value = rng.choice(GIANT_INTS + [INF, -INF, NAN, -1, 0, 1e308])
    overrides = {key: kv_num(key, value)}
    if key == "llama.expert_count":
        overrides["llama.expert_used_count"] = kv_num("llama.expert_used_count", 2)
    if key == "general.base_model.count" or rng.random() < 0.2:
        overrides["general.base_model.0.repo_url"] = kv_str("general.base_model.0.repo_url",
                                                            "https://huggingface.co/" + "a" * rng.choice([5, 100_000])
                                                            + "/b")
    op = rng.randrange(5)
    infos, data = _model_tensors()
    n_tensors = None
    if op == 1:                                     # a vocabulary claiming 2^63 tokens
        overrides["tokenizer.ggml.tokens"] = kv("tokenizer.ggml.tokens", T_ARR,
                                                struct.pack("<IQ", T_STR, rng.choice(GIANT_INTS)))
    elif op == 2:
        overrides["general.architecture"] = kv_str("general.architecture",
                                                   rng.choice(["x" * 200_000, "llama\0", "", "qwen2", "gpt2"]))
    elif op == 3:
        n_tensors = rng.choice(GIANT_INTS)
    elif op == 4:                                   # a per-layer head-count array with odd values
        overrides["llama.attention.head_count_kv"] = kv(
            "llama.attention.head_count_kv", T_ARR,
            struct.pack("<IQ", T_F64, 3) + struct.pack("<ddd", INF, NAN, 4.0))
    path = case_dir / "model.gguf"
    path.write_bytes(raw_gguf(_model_kvs(overrides), infos, data, n_tensors=n_tensors))
    return path


def hf_model_hostile(case_dir: Path, rng: random.Random, seeds) -> Path:
    folder = case_dir / "model-hf"
    shutil.copytree(seeds["model_hf"], folder)
    cfg = json.loads((folder / "config.json").read_text())
    op = rng.randrange(4)
    if op == 0:
        field = rng.choice(["num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads",
                            "vocab_size", "intermediate_size", "head_dim", "num_local_experts", "tie_word_embeddings",
                            "model_type", "architectures", "text_config"])
        cfg[field] = rng.choice(BAD_NUMBERS + [10**9, 2**31, [10**9, 2], {"model_type": "llama"}])
        if field == "num_local_experts":
            cfg["model_type"] = "mixtral"
        (folder / "config.json").write_text(json.dumps(cfg, allow_nan=True, default=str))
    elif op == 1:
        text = json.dumps(cfg).replace('"num_hidden_layers": 2', '"num_hidden_layers": '
                                       + rng.choice(["1e999", "9" * 5000, "NaN", "-Infinity"]))
        (folder / "config.json").write_text(text)
    elif op == 2:                                   # an index pointing outside, or at 10,000 shards
        shards = rng.choice([{"a": "../../etc/passwd"}, {"a": "/etc/passwd"}, {"a": "C:evil.safetensors"},
                             {f"t{i}": f"model-{i:05d}.safetensors" for i in range(10_000)}, [], {"a": 5}])
        (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": shards}))
    else:
        (folder / "model.safetensors").write_bytes(st_bytes({"model.embed_tokens.weight": {
            "dtype": "F32", "shape": [rng.choice(GIANT_INTS), HIDDEN], "data_offsets": [0, 4]}}, b"\0" * 4))
    return folder


# ----------------------------------------------------------------------------------------- zips
def _zip_bytes(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _adapter_entries(seeds, prefix: str = "adapter/") -> dict[str, bytes]:
    return {prefix + f.name: f.read_bytes() for f in sorted(seeds["peft"].iterdir())}


def zip_nested(case_dir: Path, rng: random.Random, seeds) -> Path:
    """Zips inside zips, 1 to 30 levels, sometimes beside the adapter files (self-similar)."""
    inner = _zip_bytes(_adapter_entries(seeds))
    for level in range(rng.choice([1, 5, 30])):
        entries = {f"level{level}.zip": inner}
        if rng.random() < 0.5:
            entries.update(_adapter_entries(seeds, ""))
        inner = _zip_bytes(entries, rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    path = case_dir / "nested.zip"
    path.write_bytes(inner)
    return path


def zip_names(case_dir: Path, rng: random.Random, seeds) -> Path:
    entries = _adapter_entries(seeds)
    op = rng.randrange(5)
    if op == 0:
        name = rng.choice(["adapter/D:evil.json", "adapter/CON", "adapter/nul.json", "adapter/x.", "adapter/x ",
                           "adapter\\..\\..\\evil", "//server/share/x", "adapter/a?b", "adapter/\x01",
                           "adapter/LPT1.txt", "C:evil", "adapter/../../evil", "/abs"])
        entries[name] = b"x"
    elif op == 1:
        entries["adapter/ADAPTER_CONFIG.JSON"] = b"{}"
    elif op == 2:
        entries.update({f"adapter/f{i}": b"" for i in range(rng.choice([1001, 5000]))})
    elif op == 3:
        entries["/".join(["d"] * rng.choice([100, 400])) + "/x.json"] = b"{}"
    else:
        entries["adapter/" + "n" * rng.choice([300, 5000])] = b"x"
    path = case_dir / "names.zip"
    path.write_bytes(_zip_bytes(entries))
    return path


def zip_bomb(case_dir: Path, rng: random.Random, seeds) -> Path:
    path = case_dir / "bomb.zip"
    if rng.random() < 0.5:                          # one entry of zeros: ratio ~1000
        path.write_bytes(_zip_bytes({**_adapter_entries(seeds), "adapter/zeros.bin": b"\0" * (20 << 20)}))
        return path
    # many central-directory entries sharing one stored stream (each entry's own ratio is 1)
    raw = _zip_bytes({"a000.bin": bytes(range(256)) * 4096}, zipfile.ZIP_STORED)
    cd, eocd = raw.rfind(b"PK\x01\x02"), raw.rfind(b"PK\x05\x06")
    record = raw[cd:eocd]
    n = rng.choice([300, 1000])
    copies = b"".join(record[:46] + f"a{i:03d}.bin".encode()[:8].ljust(8, b"_") + record[54:] for i in range(n))
    end = bytearray(raw[eocd:])
    end[8:10] = end[10:12] = min(n, 65535).to_bytes(2, "little")
    end[12:16] = len(copies).to_bytes(4, "little")
    path.write_bytes(raw[:cd] + copies + bytes(end))
    return path


GENERATORS = [
    ("peft", "giant-layer", peft_giant_layer), ("peft", "long-name", peft_long_name),
    ("peft", "many-modules", peft_many_modules), ("peft", "config-values", peft_config_values),
    ("peft", "patterns", peft_patterns), ("peft", "safetensors-header", safetensors_header),
    ("kohya", "hostile", kohya_hostile), ("ludwig", "hostile", ludwig_hostile),
    ("gguf", "header", gguf_adapter_hostile), ("model_gguf", "metadata", gguf_model_hostile),
    ("model_hf", "config", hf_model_hostile), ("zip", "nested", zip_nested), ("zip", "names", zip_names),
    ("zip", "bomb", zip_bomb),
]


def hostile_case(seeds: dict[str, Path], case_dir: Path, rng: random.Random) -> tuple[str, Path]:
    kind, name, make = rng.choice(GENERATORS)
    path = make(case_dir, rng, seeds)
    return f"{kind}:hostile:{name}", path
