"""The exact row transforms llama.cpp's converter applies to some weights, and their inverses.

Each acts on the output rows of a matrix (first axis): for a LoRA, on B only, since
permute(B·A) = permute(B)·A. 1-D arrays (biases) work too. `hparams` needs n_head and, for rope_k,
n_head_kv; bloom_qkv needs n_head.

    rope_q / rope_k  Llama-family q/k (conversion/llama.py `permute`): within each head, the rows are
                     [first half; second half] in HF and interleaved pairs in GGUF
                     (reshape(n_h, 2, d/2, …) → swap axes 1, 2).
    bloom_qkv        BLOOM query_key_value (conversion/bloom.py): HF interleaves per head
                     [q_h, k_h, v_h]; GGUF stacks [Q; K; V].
    none             identity.

Third-party plugins name their own transform "package.module:attr"; the attribute is a `RowTransform`
or a plain callable (forward only, no inverse).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

Fn = Callable[[np.ndarray, Mapping], np.ndarray]


@dataclass(frozen=True)
class RowTransform:
    name: str
    forward: Fn                  # HF row order → GGUF row order
    inverse: Fn | None = None    # GGUF row order → HF row order


def _heads(hparams: Mapping, key: str) -> int:
    value = hparams.get(key)
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"row transform needs a positive integer hparam '{key}', got {value!r}")
    return int(value)


def _split_heads(rows: int, n_head: int, name: str) -> int:
    if rows % (2 * n_head):
        raise ValueError(f"{name}: {rows} rows do not split into {n_head} heads of an even size")
    return rows // n_head // 2


def _rope(w: np.ndarray, n_head: int, inverse: bool, name: str) -> np.ndarray:
    half = _split_heads(w.shape[0], n_head, name)
    rest = w.shape[1:]
    if inverse:   # GGUF: per head, pairs (x0, y0, x1, y1, …) → HF halves (x…, y…)
        return w.reshape(n_head, half, 2, *rest).swapaxes(1, 2).reshape(w.shape)
    return w.reshape(n_head, 2, half, *rest).swapaxes(1, 2).reshape(w.shape)


def _kv_heads(hparams: Mapping) -> int:
    # The converter uses n_head_kv whenever it is given and differs from n_head.
    kv = hparams.get("n_head_kv")
    return _heads(hparams, "n_head_kv") if kv is not None else _heads(hparams, "n_head")


def rope_q(w: np.ndarray, hparams: Mapping) -> np.ndarray:
    return _rope(np.asarray(w), _heads(hparams, "n_head"), False, "rope_q")


def rope_q_inverse(w: np.ndarray, hparams: Mapping) -> np.ndarray:
    return _rope(np.asarray(w), _heads(hparams, "n_head"), True, "rope_q")


def rope_k(w: np.ndarray, hparams: Mapping) -> np.ndarray:
    return _rope(np.asarray(w), _kv_heads(hparams), False, "rope_k")


def rope_k_inverse(w: np.ndarray, hparams: Mapping) -> np.ndarray:
    return _rope(np.asarray(w), _kv_heads(hparams), True, "rope_k")


def _bloom_dims(w: np.ndarray, hparams: Mapping) -> tuple[int, int]:
    n_head = _heads(hparams, "n_head")
    if w.shape[0] % (3 * n_head):
        raise ValueError(f"bloom_qkv: {w.shape[0]} rows are not 3 × {n_head} heads")
    return n_head, w.shape[0] // (3 * n_head)


def bloom_qkv(w: np.ndarray, hparams: Mapping) -> np.ndarray:
    w = np.asarray(w)
    n_head, head_dim = _bloom_dims(w, hparams)
    # (head, {q,k,v}, d, …) → ({q,k,v}, head, d, …)
    return w.reshape(n_head, 3, head_dim, *w.shape[1:]).swapaxes(0, 1).reshape(w.shape)


def bloom_qkv_inverse(w: np.ndarray, hparams: Mapping) -> np.ndarray:
    w = np.asarray(w)
    n_head, head_dim = _bloom_dims(w, hparams)
    return w.reshape(3, n_head, head_dim, *w.shape[1:]).swapaxes(0, 1).reshape(w.shape)


def identity(w: np.ndarray, hparams: Mapping) -> np.ndarray:
    return np.asarray(w)


TRANSFORMS: Mapping[str, RowTransform] = {
    "none": RowTransform("none", identity, identity),
    "rope_q": RowTransform("rope_q", rope_q, rope_q_inverse),
    "rope_k": RowTransform("rope_k", rope_k, rope_k_inverse),
    "bloom_qkv": RowTransform("bloom_qkv", bloom_qkv, bloom_qkv_inverse),
}


def get_transform(name: str | None) -> RowTransform:
    """The transform called `name` ("" / None = identity); "module:attr" is imported on demand.

    Raises KeyError for an unknown built-in name and ImportError/AttributeError for a bad reference.
    """
    if not name:
        return TRANSFORMS["none"]
    if name in TRANSFORMS:
        return TRANSFORMS[name]
    if ":" not in name:
        raise KeyError(f"unknown row transform '{name}' (known: {', '.join(TRANSFORMS)}, or 'module:attr')")
    module, _, attr = name.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, RowTransform):
        return obj
    if callable(obj):
        return RowTransform(name, obj, None)
    raise TypeError(f"row transform '{name}' is a {type(obj).__name__}, not a RowTransform or a function")


def apply(name: str | None, w: np.ndarray, hparams: Mapping, inverse: bool = False) -> np.ndarray:
    """Apply the transform `name` (or its inverse) to the rows of `w`."""
    t = get_transform(name)
    fn = t.inverse if inverse else t.forward
    if fn is None:
        raise ValueError(f"row transform '{t.name}' has no inverse")
    out = fn(w, hparams)
    if out.shape != np.shape(w):
        raise ValueError(f"row transform '{t.name}' changed the shape {np.shape(w)} → {out.shape}")
    return out
