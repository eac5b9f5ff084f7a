"""llama.cpp LoRA adapters in GGUF (general.type=adapter, adapter.type=lora) — the one reader of them.

Tensors are `<base GGUF tensor>.lora_a` (r, in) / `.lora_b` (out, r) in numpy order, read back into
the base model's transformers module names through the architecture tables; a stacked MoE pair
(`blk.N.ffn_gate_exps`, a: (E, r, in), b: (E, out, r)) becomes one module per expert. Every module
keeps its GGUF tensor name in `extra["gguf_tensor"]`, and the source also answers the raw tensor names,
so the llama.cpp engine works on the same reading in GGUF space (compatibility, fused files).
llama.cpp's runtime scale is `alpha / rank` per tensor when `adapter.lora.alpha` is set, else 1.

Two things a GGUF adapter does not say on its own: the row order llama.cpp's converter gave some
weights (Llama q/k are permuted per head, Bloom's fused qkv is interleaved) needs head counts, which
only the base model has. With a base of the same architecture, `lora_b` rows are put back in
transformers order; without one they stay in llama.cpp order and the adapter carries a warning.
The architecture is always the one the file declares, never the base's: a mismatch is for the
compatibility check to report.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from adapters_backend.plugins.api import (
    Adapter,
    AdapterFormatError,
    GGUFError,
    ModuleDelta,
    TensorFile,
    TensorNameMap,
    find_archs,
    inverse_transform,
    read_gguf_header,
)

_BLK = re.compile(r"^blk\.(\d{1,9})\.")
_PAIR_SUFFIXES = (".lora_a", ".lora_b")
INVOCATION_KEY = "adapter.alora.invocation_tokens"


def sniff(path: Path) -> float:
    path = Path(path)
    if not path.is_file():
        return 0.0
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                return 0.0
    except OSError:
        return 0.0
    try:
        head = read_gguf_header(path)
    except (GGUFError, OSError):
        return 0.3          # a damaged GGUF: reading it says what is wrong
    # A GGUF model is claimed too (with less certainty) so that reading it says what it is.
    return 0.95 if head.general_type == "adapter" else 0.4


class GGUFSource:
    """Tensors of a GGUF file as float32 (numpy order) by their GGUF names, plus derived keys:
    "name@T" (transposed), "name@x<i>" (expert i of a stacked pair) and "name@inv:<transform>" (rows
    put back in transformers order with the base's head counts)."""

    def __init__(self, path: Path, header, hparams: dict | None = None):
        self.path, self.hparams = Path(path), hparams or {}
        self._file = TensorFile(path, header)

    def _base(self, key: str):
        name, _, op = key.partition("@")
        info = self._file.tensors.get(name)
        if info is None:
            raise KeyError(key)
        return info, op

    def keys(self) -> list[str]:
        return list(self._file.tensors)

    def shape(self, key: str) -> tuple[int, ...]:
        info, op = self._base(key)
        if op == "T":
            return info.shape[::-1]
        if op.startswith("x"):
            return info.shape[1:]
        return info.shape

    def dtype(self, key: str) -> str:
        return self._base(key)[0].type_name

    def read(self, key: str) -> np.ndarray:
        info, op = self._base(key)
        try:
            data = self._file.read(info.name)
        except GGUFError as exc:
            raise AdapterFormatError(self.path, str(exc)) from None
        if not np.isfinite(data).all():
            raise AdapterFormatError(self.path, f"tensor '{info.name}' holds NaN or infinite values")
        if op == "T":
            return np.ascontiguousarray(data.T)
        if op.startswith("x"):
            return np.ascontiguousarray(data[int(op[1:])])
        if op.startswith("inv:"):
            return inverse_transform(op[4:], data, self.hparams)
        return data

    def close(self) -> None:
        self._file.close()


def read(path: Path, base=None) -> Adapter:
    path = Path(path)
    try:
        head = read_gguf_header(path, keep_array=lambda key: key == INVOCATION_KEY)
    except (GGUFError, OSError) as exc:
        raise AdapterFormatError(path, f"is not a readable GGUF file ({exc})") from None
    meta = head.metadata
    if head.general_type != "adapter" or meta.get("adapter.type") != "lora":
        what = "a model, not a LoRA adapter" if head.general_type in ("", "model") else "not a LoRA adapter"
        found = ", ".join(f"{key} = {meta[key]!r}" if meta.get(key) is not None else f"no {key}"
                          for key in ("general.type", "adapter.type"))
        raise AdapterFormatError(path, f"is a GGUF file but {what} ({found}); load it as the model, or "
                                       "choose its adapter file")
    alpha = _alpha(path, meta.get("adapter.lora.alpha"))
    warnings: list[str] = []
    pairs = _pairs(path, head.tensors, warnings)
    gguf_arch = head.architecture
    spec = _table(gguf_arch, moe=any(len(a.shape) == 3 for a, _b in pairs.values()))
    same_family = base is not None and getattr(base, "arch", None) is not None and spec is not None \
        and base.arch.gguf_arch == spec.gguf_arch
    hparams = base.transform_hparams() if same_family else {}
    if same_family:
        name_map = base.name_map
    elif spec is not None:
        blocks = [int(m.group(1)) for t in pairs if (m := _BLK.match(t))]
        name_map = TensorNameMap(spec, max(blocks) + 1 if blocks else 1, None)
    else:
        name_map = None
        warnings.append(f"architecture {gguf_arch!r} has no table: module names are llama.cpp tensor names")
    source = GGUFSource(path, head, hparams)

    modules: dict[str, ModuleDelta] = {}
    unordered = False
    for target, (a_info, b_info) in pairs.items():
        a, b = a_info.shape, b_info.shape
        rank = b[-1]
        if any(d <= 0 for d in (*a, *b)):
            raise AdapterFormatError(path, f"'{target}' has an empty dimension (lora_a {list(a)}, lora_b {list(b)})")
        extra = {"gguf_tensor": target}
        if len(a) == 3:
            added = _expert_modules(path, target, a_info, b_info, alpha, name_map, extra, modules)
            if not added:
                warnings.append(f"{target}: stacked expert LoRA tensors have no per-expert module in the table; "
                                "skipped outside llama.cpp")
            continue
        if len(a) != 2 or len(b) != 2:
            raise AdapterFormatError(path, f"'{target}': LoRA tensors of {len(a)} and {len(b)} dimensions")
        is_embedding = target.startswith("token_embd")
        if is_embedding:          # lora_a (vocab, r), lora_b (dim, r); ΔE = lora_a·lora_bᵀ
            if a[1] != rank:
                raise AdapterFormatError(path, f"'{target}' lora_a and lora_b ranks differ ({a[1]} vs {rank})")
            out_f, in_f = a[0], b[0]
        else:
            if a[0] != rank:
                raise AdapterFormatError(path, f"'{target}': lora_a has {a[0]} rows but lora_b {rank} columns "
                                               "(lora_a tensor is not transposed)")
            out_f, in_f = b[0], a[1]
        scale = alpha / rank if alpha else 1.0
        hf, rule = _hf_name(name_map, target)
        fan_in = bool(rule is not None and rule.kind == "conv1d")
        a_key, b_key = target + ".lora_a", target + ".lora_b"
        if is_embedding:
            mod = ModuleDelta(hf, "embedding", out_f, in_f, rank, alpha or None, scale,
                              {"A": a_key + "@T", "B": b_key}, source.dtype(a_key), extra=extra)
        else:
            transform = getattr(rule, "transform", "none") if rule is not None else "none"
            if transform not in ("", "none"):
                if hparams:
                    b_key += f"@inv:{transform}"
                else:
                    unordered = True
                    extra["gguf_row_order"] = transform
            mod = ModuleDelta(hf, "lora", out_f, in_f, rank, alpha or None, scale, {"A": a_key, "B": b_key},
                              source.dtype(a_key), fan_in_fan_out=fan_in, extra=extra)
        if hf in modules:
            raise AdapterFormatError(path, f"two LoRA tensors map to module {hf}")
        modules[hf] = mod
    if unordered:
        warnings.append("some lora_b rows are in llama.cpp's row order (q/k head permutation); give the base model "
                        "to use this adapter outside llama.cpp")
    metadata = {k: v for k, v in meta.items() if isinstance(k, str) and k.startswith(("general.", "adapter."))}
    if isinstance(meta.get("general.license"), str):
        metadata["license"] = meta["general.license"]
    config: dict = {"alpha": alpha}
    tokens = meta.get(INVOCATION_KEY)
    if tokens is not None:
        if not isinstance(tokens, list) or not all(isinstance(t, int) and t >= 0 for t in tokens):
            raise AdapterFormatError(path, f"{INVOCATION_KEY} must be a list of token ids")
        config["alora_invocation_tokens"] = list(tokens)
    task = meta.get("adapter.lora.task_name")
    return Adapter(path=path, format_id="gguf", modules=modules, source=source, base_model=_declared_base(meta),
                   architecture=spec.id if spec is not None else (gguf_arch or None), config=config,
                   metadata=metadata, warnings=warnings, task_name=task if isinstance(task, str) else None)


def _table(gguf_arch: str, moe: bool):
    """The table for the file's architecture; with stacked expert pairs, one that has experts (GGUF arch
    "llama" covers Llama, Mistral and Mixtral)."""
    specs = find_archs(gguf_arch=gguf_arch) if gguf_arch else []
    with_experts = [s for s in specs if any(r.kind == "expert" for r in s.modules)]
    return (with_experts if moe and with_experts else specs or [None])[0]


def _alpha(path: Path, value) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AdapterFormatError(path, f"adapter.lora.alpha must be a finite number, not {value!r}")
    return float(value)


def _pairs(path: Path, tensors, warnings: list[str]) -> dict:
    """{base tensor name: (lora_a info, lora_b info)}; other tensors are ignored, as llama.cpp does."""
    halves: dict[str, dict[str, object]] = {}
    others = []
    for name, info in tensors.items():
        if name.endswith(_PAIR_SUFFIXES):
            halves.setdefault(name[:-7], {})[name[-1]] = info
        else:
            others.append(name)
    if others:
        warnings.append(f"{len(others)} tensor(s) that are not LoRA factors are ignored (e.g. {others[0]})")
    if not halves:
        raise AdapterFormatError(path, "the adapter has no LoRA tensors (.lora_a/.lora_b)")
    out = {}
    for target, d in halves.items():
        if set(d) != {"a", "b"}:
            raise AdapterFormatError(path, f"LoRA tensor pair for '{target}' is missing one half")
        if len(d["a"].shape) != len(d["b"].shape):
            raise AdapterFormatError(path, f"'{target}': lora_a and lora_b have different numbers of dimensions")
        out[target] = (d["a"], d["b"])
    return out


def _expert_modules(path, target, a_info, b_info, alpha, name_map, extra, modules) -> bool:
    """One module per expert of a stacked pair (a: (E, r, in), b: (E, out, r)); False if unnamed."""
    (n_exp, rank, in_f), (n_exp_b, out_f, rank_b) = a_info.shape, b_info.shape
    if n_exp != n_exp_b or rank != rank_b:
        raise AdapterFormatError(path, f"'{target}': lora_a {list(a_info.shape)} and lora_b {list(b_info.shape)} "
                                       "do not pair up")
    if name_map is None or name_map.to_hf(target, xid=0) is None:
        return False
    for xid in range(n_exp):
        hf = name_map.to_hf(target, xid=xid)
        if hf is None:
            raise AdapterFormatError(path, f"'{target}' holds {n_exp} experts, more than the model family allows")
        modules[hf] = ModuleDelta(hf, "lora", out_f, in_f, rank, alpha or None, alpha / rank if alpha else 1.0,
                                  {"A": f"{a_info.name}@x{xid}", "B": f"{b_info.name}@x{xid}"}, a_info.type_name,
                                  extra={**extra, "expert": xid})
    return True


def _declared_base(meta: dict) -> str | None:
    url = meta.get("general.base_model.0.repo_url")
    if isinstance(url, str):
        return url.removeprefix("https://huggingface.co/")
    name = meta.get("general.base_model.0.name")
    return name if isinstance(name, str) else None


def _hf_name(name_map, target: str):
    if name_map is None:
        return target, None
    hf = name_map.to_hf(target)
    if hf is None:
        return target, None
    m = name_map.match(hf)
    return hf, m.rule if m is not None else None
