"""llama.cpp LoRA adapters in GGUF (general.type=adapter, adapter.type=lora).

Tensors are `<base GGUF tensor>.lora_a` (r, in) / `.lora_b` (out, r), read back into the base model's
transformers module names through the architecture tables. llama.cpp's runtime scale is
`alpha / rank` per tensor when `adapter.lora.alpha` is set and 1 when it is 0 or missing.

Two things a GGUF adapter does not say on its own: the row order llama.cpp's converter gave some
weights (Llama q/k are permuted per head, Bloom's fused qkv is interleaved) needs head counts, which
only the base model has. With a base, `lora_b` rows are put back in transformers order; without one
they stay in llama.cpp order and the adapter carries a warning (norms and ranks are unaffected).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from adapters_backend.core.adapter import Adapter, ModuleDelta
from adapters_backend.errors import AdapterFormatError
from adapters_backend.gguf.header import read_gguf_header

_BLK = re.compile(r"^blk\.(\d{1,9})\.")


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
    except (ValueError, OSError):
        return 0.3          # a damaged GGUF: reading it says what is wrong
    return 0.95 if head.metadata.get("general.type") == "adapter" else 0.0


class GGUFSource:
    """Tensors of a GGUF file as float32, with derived keys: "name@T" (transposed) and
    "name@inv:<transform>" (rows put back in transformers order with the base's head counts)."""

    def __init__(self, path: Path, hparams: dict | None = None):
        from gguf import GGUFReader

        self.path, self.hparams = Path(path), hparams or {}
        try:
            self._reader = GGUFReader(str(path))
        except Exception as exc:  # noqa: BLE001 - gguf-py raises many kinds on damaged files
            raise AdapterFormatError(path, f"is not a readable GGUF file ({type(exc).__name__}: {exc})") from None
        self._tensors = {t.name: t for t in self._reader.tensors}

    def _base(self, key: str):
        name, _, op = key.partition("@")
        if name not in self._tensors:
            raise KeyError(key)
        return self._tensors[name], op

    def keys(self) -> list[str]:
        return list(self._tensors)

    def shape(self, key: str) -> tuple[int, ...]:
        t, op = self._base(key)
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        return shape[::-1] if op == "T" else shape

    def dtype(self, key: str) -> str:
        t, _ = self._base(key)
        return t.tensor_type.name

    def read(self, key: str) -> np.ndarray:
        from gguf import GGMLQuantizationType, quants

        t, op = self._base(key)
        try:
            if t.tensor_type in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
                data = np.asarray(t.data, dtype=np.float32)
            else:
                data = np.asarray(quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
            data = data.reshape(self.shape(key.partition("@")[0]))
        except Exception as exc:  # noqa: BLE001
            raise AdapterFormatError(self.path, f"tensor '{t.name}' cannot be read ({type(exc).__name__}: {exc})") from None
        if not np.isfinite(data).all():
            raise AdapterFormatError(self.path, f"tensor '{t.name}' holds NaN or infinite values")
        if op == "T":
            return np.ascontiguousarray(data.T)
        if op.startswith("inv:"):
            from adapters_backend.arch import transforms
            return transforms.apply(op[4:], data, self.hparams, inverse=True)
        return data


def _field(reader, key: str):
    f = reader.fields.get(key)
    if f is None:
        return None
    try:
        return f.contents()
    except Exception:  # noqa: BLE001
        return None


def read(path: Path, base=None) -> Adapter:
    path = Path(path)
    try:
        head = read_gguf_header(path)
    except (ValueError, OSError) as exc:
        raise AdapterFormatError(path, f"is not a readable GGUF file ({exc})") from None
    meta = head.metadata
    if meta.get("general.type") != "adapter" or meta.get("adapter.type") != "lora":
        raise AdapterFormatError(path, f"is a GGUF file but not a LoRA adapter (general.type="
                                       f"{meta.get('general.type')!r}, adapter.type={meta.get('adapter.type')!r})")
    gguf_arch = meta.get("general.architecture")
    hparams = base.transform_hparams() if base is not None else {}
    source = GGUFSource(path, hparams)
    alpha = meta.get("adapter.lora.alpha")
    alpha = float(alpha) if isinstance(alpha, (int, float)) and not isinstance(alpha, bool) else 0.0
    if not math.isfinite(alpha):
        raise AdapterFormatError(path, f"adapter.lora.alpha is {alpha}; it must be a finite number")

    pairs: dict[str, dict[str, str]] = {}
    for name in source.keys():
        if name.endswith((".lora_a", ".lora_b")):
            pairs.setdefault(name[:-7], {})[name[-1].upper()] = name
    warnings: list[str] = []
    name_map, spec = _name_map(gguf_arch, pairs, base, warnings)
    modules: dict[str, ModuleDelta] = {}
    unordered = False
    for target, roles in pairs.items():
        if set(roles) != {"A", "B"}:
            raise AdapterFormatError(path, f"LoRA tensor pair for '{target}' is missing one component")
        a, b = source.shape(roles["A"]), source.shape(roles["B"])
        if len(a) != 2 or len(b) != 2:
            warnings.append(f"{target}: {len(a)}-D LoRA tensors (MoE experts) are not read; skipped")
            continue
        is_embedding = target.startswith("token_embd")
        if is_embedding:          # lora_a (vocab, r), lora_b (dim, r); ΔE = lora_a·lora_bᵀ
            if a[1] != b[1]:
                raise AdapterFormatError(path, f"'{target}' lora_a and lora_b ranks differ ({a[1]} vs {b[1]})")
            rank, out_f, in_f = a[1], a[0], b[0]
        else:
            if a[0] != b[1]:
                raise AdapterFormatError(path, f"'{target}': lora_a has {a[0]} rows but lora_b {b[1]} columns "
                                               "(lora_a tensor is not transposed)")
            rank, out_f, in_f = a[0], b[0], a[1]
        scale = alpha / rank if alpha else 1.0
        hf, rule = _hf_name(name_map, target)
        extra = {"gguf_tensor": target}
        fan_in = bool(rule is not None and rule.kind == "conv1d")
        if is_embedding:
            mod = ModuleDelta(hf, "embedding", out_f, in_f, rank, alpha or None, scale,
                              {"A": roles["A"] + "@T", "B": roles["B"]}, source.dtype(roles["A"]), extra=extra)
        else:
            b_key = roles["B"]
            transform = getattr(rule, "transform", "none") if rule is not None else "none"
            if transform not in ("", "none"):
                if hparams:
                    b_key += f"@inv:{transform}"
                else:
                    unordered = True
                    extra["gguf_row_order"] = transform
            mod = ModuleDelta(hf, "lora", out_f, in_f, rank, alpha or None, scale, {"A": roles["A"], "B": b_key},
                              source.dtype(roles["A"]), fan_in_fan_out=fan_in, extra=extra)
        if hf in modules:
            raise AdapterFormatError(path, f"two LoRA tensors map to module {hf}")
        modules[hf] = mod
    if unordered:
        warnings.append("some lora_b rows are in llama.cpp's row order (q/k head permutation); give the base model "
                        "to use this adapter outside llama.cpp")
    metadata = {k: v for k, v in meta.items() if isinstance(k, str) and k.startswith(("general.", "adapter."))}
    base_model = None
    if isinstance(meta.get("general.base_model.0.repo_url"), str):
        base_model = meta["general.base_model.0.repo_url"].removeprefix("https://huggingface.co/")
    elif isinstance(meta.get("general.base_model.0.name"), str):
        base_model = meta["general.base_model.0.name"]
    if isinstance(meta.get("general.license"), str):
        metadata["license"] = meta["general.license"]
    config = {"alpha": alpha}
    tokens = _field(source._reader, "adapter.alora.invocation_tokens")
    if tokens is not None:
        config["alora_invocation_tokens"] = list(tokens)
    return Adapter(path=path, format_id="gguf", modules=modules, source=source, base_model=base_model,
                   architecture=spec.id if spec is not None else None, config=config, metadata=metadata,
                   warnings=warnings, task_name=meta.get("adapter.lora.task_name")
                   if isinstance(meta.get("adapter.lora.task_name"), str) else None)


def _name_map(gguf_arch, pairs, base, warnings):
    from adapters_backend.arch.name_map import TensorNameMap
    from adapters_backend.arch.registry import find_arch

    if base is not None and getattr(base, "name_map", None) is not None:
        return base.name_map, base.arch
    spec = find_arch(gguf_arch=gguf_arch) if isinstance(gguf_arch, str) else None
    if spec is None:
        warnings.append(f"architecture {gguf_arch!r} has no table: module names are llama.cpp tensor names")
        return None, None
    blocks = [int(m.group(1)) for t in pairs if (m := _BLK.match(t))]
    return TensorNameMap(spec, max(blocks) + 1 if blocks else 1), spec


def _hf_name(name_map, target: str):
    if name_map is None:
        return target, None
    hf = name_map.to_hf(target)
    if hf is None:
        return target, None
    m = name_map.match(hf)
    return hf, m.rule if m is not None else None
