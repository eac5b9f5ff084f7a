"""`blend`: several adapters at fixed strengths → one new PEFT LoRA adapter, exactly.

For every module, Σ sᵢ·ΔWᵢ = [s₁B₁ … sₙBₙ]·[A₁; …; Aₙ]: stacking the factors (scales folded into B)
gives an exact LoRA of rank Σ rᵢ, whatever each adapter's variant or convention (LoHa/LoKr/AdaLoRA
arrive as exact LoRA factors). Each module's PEFT scale is set to 1 (lora_alpha = r per module via
rank_pattern/alpha_pattern), so nothing depends on rsLoRA or pattern rules.

`rank=k` truncates every module to rank ≤ k with an SVD of the stacked factors (never forming ΔW) and
reports the relative Frobenius error per module. DoRA is not low-rank: it needs the base model
(`base=`), and a module with a DoRA part is formed densely (Σ sᵢ·ΔWᵢ with DoRA's exact ΔW) and
factored by SVD with the smallest rank whose relative error against that exact sum is at most
`max_error`; when `rank` is below that, the blend stops (BlendError says the rank it needs) rather
than write an adapter that is quietly different.
Full replacement tensors (modules_to_save, biases) cannot be part of a LoRA and are skipped, named.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..convert.factors import is_dense
from ..convert.svd import reduce_factors, truncate
from ..disk_space import writing
from ..formats.safetensors_io import SafetensorsWriter, encode_as
from ..jobs import JobContext
from .common import MergeError, finish_output_dir, prepare_output_dir, read_adapters


@dataclass
class BlendResult:
    path: Path
    ranks: dict[str, int] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)     # module -> relative error (when not exact)
    dora_errors: dict[str, float] = field(default_factory=dict)  # modules with a DoRA part -> their SVD's error
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)


def _exact_dora_delta(adapter, mod, base, weights) -> np.ndarray:
    """DoRA's exact ΔW at strength 1 (W'(1) − W, what PEFT's merge adds), HF layout (out, in)."""
    from ..core.base_model import BaseModelInfo
    from ..core.variants import dense_delta
    if not isinstance(base, BaseModelInfo) or weights is None:
        raise MergeError(f"{adapter.path}: {mod.name} is DoRA, which is not low-rank; blending it needs the base "
                         "model (--base) to compute its exact delta")
    m = base.match(mod.name)
    if m is None or not base.has_gguf_tensor(m.gguf):
        raise MergeError(f"{adapter.path}: no base weight found for the DoRA module {mod.name}")
    from ..arch import transforms
    w = weights.gguf_weight(m.gguf)
    if m.rule.kind != "embedding":
        w = transforms.apply(m.rule.transform, w, base.transform_hparams(), inverse=True)
    return np.asarray(dense_delta(mod, adapter.tensors(mod), w), dtype=np.float32)


def _dense_module(name, group, base, weights, rank: int | None, max_error: float):
    """The SVD of the exact sum of a module with a DoRA part, at the smallest rank within `max_error`,
    and the error `rank` would give when that is too small for it (else None)."""
    from ..core.variants import lowrank
    total = None
    for adapter, mod, s in group:
        if is_dense(mod):
            delta = _exact_dora_delta(adapter, mod, base, weights)
        else:
            A, B = lowrank(mod, adapter.tensors(mod))
            delta = np.asarray(B, dtype=np.float32) @ np.asarray(A, dtype=np.float32)
        delta *= np.float32(s)
        total = delta if total is None else total + delta
    t = truncate(total, max_error)
    short = truncate(total, rank=rank).error if rank is not None and t.rank > rank else None
    return t, short


def blend(adapters, out, *, rank: int | None = None, base=None, max_error: float = 1e-3,
          overwrite: bool = False, ctx: JobContext | None = None) -> BlendResult:
    """Write the PEFT adapter Σ sᵢ·adapterᵢ at `out`. `adapters`: [(path | Adapter, strength) | "PATH:S"]."""
    from ..core.variants import lowrank

    ctx = ctx or JobContext()
    weights = None
    if base is not None:
        from ..core.base_model import BaseModelInfo, load_base_model
        base = base if isinstance(base, BaseModelInfo) else load_base_model(base)
    loaded = read_adapters(adapters, base)
    if base is not None:
        # A PEFT adapter runs on the PyTorch engine, which applies every module: its rules, not llama.cpp's.
        from ..core.compat import require_compatible
        for adapter, _ in loaded:
            require_compatible(adapter, base, engine="torch")
    result = BlendResult(Path(out))
    # module -> list of (adapter, ModuleDelta, strength); every adapter must agree on each module's shape
    modules: dict[str, list] = {}
    for adapter, strength in loaded:
        for mod in adapter:
            if mod.variant in ("full", "bias"):
                result.warnings.append(f"{adapter.path}: skipped {mod.name}: a full replacement tensor "
                                       f"({mod.variant}) cannot be part of a LoRA")
                continue
            if "bias" in mod.roles:
                result.warnings.append(f"{adapter.path}: skipped the bias of {mod.name} (lora_bias)")
            prev = modules.setdefault(mod.name, [])
            if prev and (prev[0][1].out_features, prev[0][1].in_features) != (mod.out_features, mod.in_features):
                raise MergeError(f"{adapter.path}: {mod.name} is {mod.out_features}×{mod.in_features} here but "
                                 f"{prev[0][1].out_features}×{prev[0][1].in_features} in {prev[0][0].path}")
            prev.append((adapter, mod, strength))
    if not modules:
        raise MergeError("nothing to blend: no low-rank modules in the given adapters")
    if any(is_dense(mod) for entries in modules.values() for _, mod, _ in entries) and base is not None:
        from ..convert.base_weights import BaseWeights
        weights = BaseWeights(base)

    staging = prepare_output_dir(Path(out), 0)        # adapter-sized: the writes themselves say when it is full
    try:
        entries, kinds = [], {}
        # Pass 1: shapes (ranks) — compute factors module by module, spool them as float32 .npy-free bytes.
        spool = staging / ".factors.bin"
        index: list[tuple[str, str, tuple[int, ...], int, int]] = []
        too_small: dict[str, tuple[int, float]] = {}     # DoRA module -> (rank it needs, error at --rank)
        with open(spool, "wb") as f:
            for i, (name, group) in enumerate(modules.items()):
                ctx.check()
                ctx.report(i, len(modules), name)
                if any(is_dense(mod) for _, mod, _ in group):
                    t, short = _dense_module(name, group, base, weights, rank, max_error)
                    if short is not None:
                        too_small[name] = (t.rank, short)
                        continue
                    A, B = t.A, t.B
                    result.errors[name] = result.dora_errors[name] = t.error
                else:
                    As, Bs = [], []
                    for adapter, mod, s in group:
                        A, B = lowrank(mod, adapter.tensors(mod))
                        As.append(np.asarray(A, dtype=np.float32))
                        Bs.append(np.float32(s) * np.asarray(B, dtype=np.float32))
                    A, B = np.concatenate(As, axis=0), np.concatenate(Bs, axis=1)
                    if rank is not None and A.shape[0] > rank:
                        t = reduce_factors(A, B, rank=rank)
                        A, B = t.A, t.B
                        result.errors[name] = t.error
                kinds[name] = group[0][1]
                result.ranks[name] = int(A.shape[0])
                for role, arr in _peft_tensors(group[0][1], A, B):
                    key = f"base_model.model.{name}.{role}"
                    pos = f.tell()
                    with writing(out):
                        f.write(encode_as(arr, "F32"))
                    index.append((key, "F32", arr.shape, pos, arr.nbytes))
            with writing(out):
                f.flush()                     # here, so the close below has nothing left to fail on
        if too_small:
            raise _rank_too_small(too_small, rank, max_error)
        entries = [(k, d, s) for k, d, s, _, _ in index]
        writer = SafetensorsWriter(staging / "adapter_model.safetensors", entries, {"format": "pt"})
        try:
            with open(spool, "rb") as f:
                for key, _d, _s, pos, n in index:
                    f.seek(pos)
                    writer.write(key, f.read(n))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        spool.unlink()
        config = _peft_config(loaded, kinds, result.ranks)
        with writing(out):
            (staging / "adapter_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
            (staging / "README.md").write_text(_card(loaded, result, rank), encoding="utf-8")
        finish_output_dir(staging, Path(out), overwrite)
    except BaseException:
        import shutil
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if weights is not None:
            weights.close()
    ctx.report(len(modules), len(modules), "done")
    if result.dora_errors:
        result.notes.append(f"DoRA is not low-rank: {len(result.dora_errors)} module(s) factored by SVD of their exact "
                            f"delta (max relative error {max(result.dora_errors.values()):.2e}, limit {max_error:g})")
    if rank is not None:
        result.notes.append(f"reduced to rank ≤ {rank}: max relative error {result.max_error:.2e}")
    return result


def _rank_too_small(too_small: dict, rank: int, max_error: float) -> MergeError:
    need = max(k for k, _ in too_small.values())
    worst_name, (_, worst) = max(too_small.items(), key=lambda kv: kv[1][1])
    return MergeError(f"DoRA is not low-rank: at rank {rank}, {len(too_small)} module(s) would differ from the exact "
                      f"blend by more than --max-error {max_error:g} (up to {worst:.2e} relative, in {worst_name}); "
                      f"they need rank {need}. Nothing was written: raise --rank to {need} or --max-error, or bake "
                      "the adapters in with `loradeck merge`")


def _peft_tensors(mod, A, B):
    if mod.variant == "embedding":
        # canonical ΔE (vocab, dim) = B·A; PEFT: ΔE = (B_p·A_p)ᵀ with A_p (r, vocab), B_p (dim, r)
        return [("lora_embedding_A", np.ascontiguousarray(B.T)), ("lora_embedding_B", np.ascontiguousarray(A.T))]
    return [("lora_A.weight", A), ("lora_B.weight", B)]


def _peft_config(loaded, kinds, ranks) -> dict:
    r = Counter(ranks.values()).most_common(1)[0][0]
    # PEFT pattern keys are regexes matched as (.*\.)?(key)$ — escaped full names match only themselves.
    pattern = {re.escape(name): rk for name, rk in ranks.items() if rk != r}
    first = loaded[0][0]
    return {
        "peft_type": "LORA", "task_type": "CAUSAL_LM",
        "base_model_name_or_path": first.base_model,
        "r": r, "lora_alpha": r, "lora_dropout": 0.0, "use_rslora": False, "use_dora": False,
        "target_modules": sorted(ranks), "rank_pattern": pattern, "alpha_pattern": dict(pattern),
        "fan_in_fan_out": any(m.fan_in_fan_out for m in kinds.values()),
        "bias": "none", "modules_to_save": None, "init_lora_weights": True, "inference_mode": True,
    }


def _card(loaded, result: BlendResult, rank) -> str:
    lines = ["---", "library_name: peft", "tags: [lora, loradeck-blend]", "---", "",
             "# Blended adapter (LoRA Deck)", "", "Weighted sum of:", ""]
    lines += [f"- `{a.path}` × {s:g}" for a, s in loaded]
    if rank is not None:
        lines += ["", f"Reduced to rank ≤ {rank} by SVD; max relative error {result.max_error:.2e}."]
    elif result.dora_errors:
        lines += ["", f"DoRA parts factored by SVD of their exact update; max relative error {result.max_error:.2e}."]
    return "\n".join(lines) + "\n"
