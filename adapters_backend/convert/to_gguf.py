"""Convert any adapter LoRA Deck reads into a llama.cpp LoRA GGUF, exactly.

    result = convert_to_gguf("my-adapter/", "model.Q4_K_M.gguf", "my-adapter.gguf")

* Names and shapes are the ones llama.cpp's own converter writes for a plain LoRA:
  `<base tensor>.lora_a` (r, in) and `.lora_b` (out, r); token_embd (vocab, r) / (dim, r).
* Scale: every module's true factor (alpha/r, alpha/√r for rsLoRA, per-module patterns, AdaLoRA,
  LoHa/LoKr conventions) is folded into lora_b, so llama.cpp must apply none of its own. llama.cpp
  computes `alpha ? s·alpha/rank : s` with rank = lora_b's width *per tensor*. When every tensor has
  the same rank R the file says alpha = R (alpha/rank = 1 exactly, and tools that always divide
  still get 1); with mixed ranks it says alpha = 0, which llama.cpp reads as "no scaling".
* The base may be a GGUF file (its metadata is enough) or an HF folder. An adapter that does not
  fit the base raises the compatibility report's error before any file is created.
* Streams module by module and writes atomically (see gguf_stream).
"""
from __future__ import annotations

import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core.adapter import Adapter
from ..core.base_model import BaseModelInfo, load_base_model
from ..core.compat import require_compatible
from ..errors import AdapterFormatError, IncompatibleAdapterError
from ..gguf.tensors import OUTTYPES, can_encode, qtype_of
from ..gguf.writer import StreamedGGUFWriter
from ..jobs import JobContext
from ..value_range import ValuesDoNotFit, require_fit
from .factors import FactorBuilder, assemble_lora, is_dense
from .targets import plan_targets

log = logging.getLogger(__name__)
DEFAULT_MAX_ERROR = 1e-3


@dataclass
class ConvertResult:
    path: Path
    n_tensors: int                                   # lora_a + lora_b tensors written
    alpha: float                                     # adapter.lora.alpha written
    outtype: str
    ranks: dict[str, int] = field(default_factory=dict)          # GGUF tensor -> rank
    dora: dict[str, tuple[int, float]] = field(default_factory=dict)   # module -> (rank, rel. error)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    cached: bool = False

    @property
    def max_dora_error(self) -> float:
        return max((e for _, e in self.dora.values()), default=0.0)


def default_outtype(adapter: Adapter) -> str:
    """The adapter's own float precision: f16/bf16 when every factor is stored so, else f32."""
    dtypes = {m.dtype.upper() for m in adapter}
    if dtypes == {"F16"}:
        return "f16"
    if dtypes == {"BF16"}:
        return "bf16"
    return "f32"


def load_inputs(adapter, base) -> tuple[Adapter, BaseModelInfo]:
    if not isinstance(base, BaseModelInfo):
        base = load_base_model(base)
    if not isinstance(adapter, Adapter):
        from ..formats.registry import read_adapter
        adapter = read_adapter(Path(adapter), base=base)
    return adapter, base


@contextlib.contextmanager
def opened_inputs(adapter, base):
    """`load_inputs`, and the adapter closed at the end when it was read here from a path."""
    given = isinstance(adapter, Adapter)
    adapter, base = load_inputs(adapter, base)
    try:
        yield adapter, base
    finally:
        if not given:
            adapter.close()


def gguf_arch(base: BaseModelInfo) -> str:
    return base.arch_name if base.kind == "gguf" else base.arch.gguf_arch


def _tensor_qtype(outtype: str, name: str, values, notes: set[str]):
    qtype = qtype_of(outtype)
    if not can_encode(qtype, values.shape):
        # llama.cpp's converter does the same: rows that are not whole Q8_0 blocks are stored as F16.
        notes.add(f"{outtype}: tensors whose rows are not a multiple of 32 values (e.g. lora_b of rank < 32) "
                  "are stored as f16")
        qtype = qtype_of("f16")
    try:
        require_fit(values, qtype.name)
    except ValuesDoNotFit:
        # Values past float16's range (a large alpha folded into B) would be stored as infinities.
        require_fit(values, "F32", f"tensor '{name}'")
        notes.add(f"tensors whose values are past what {qtype.name} holds are stored as f32")
        qtype = qtype_of("f32")
    return qtype


def convert_to_gguf(adapter, base, out, *, outtype: str | None = None,
                    max_error: float = DEFAULT_MAX_ERROR, dora_rank: int | None = None,
                    ctx: JobContext | None = None) -> ConvertResult:
    """Write `adapter` as a llama.cpp LoRA GGUF for `base` at `out`. See the module docstring."""
    with opened_inputs(adapter, base) as (adapter, base):
        return _convert(adapter, base, Path(out), outtype, max_error, dora_rank, ctx or JobContext())


def _convert(adapter: Adapter, base: BaseModelInfo, out: Path, outtype: str | None, max_error: float,
             dora_rank: int | None, ctx: JobContext) -> ConvertResult:
    if base.arch is None:
        raise IncompatibleAdapterError(f"{base.path}: unsupported base architecture '{base.arch_name}'")
    report = require_compatible(adapter, base)
    outtype = (outtype or default_outtype(adapter)).lower()
    if outtype not in OUTTYPES:
        raise ValueError(f"--outtype must be one of {', '.join(OUTTYPES)}, not {outtype!r}")

    plan = plan_targets(adapter, base)
    if not plan.targets:
        raise IncompatibleAdapterError(f"{adapter.path}: nothing in this adapter can be applied by llama.cpp "
                                       f"to this base ({'; '.join(plan.warnings()) or 'no modules'})", report)
    warnings = plan.warnings()
    for mod in adapter:
        if "bias" in mod.roles and mod.variant not in ("bias", "full"):
            warnings.append(f"skipped the bias of {mod.name} (lora_bias): a llama.cpp LoRA carries no biases")
    builder = FactorBuilder(adapter, base, max_error=max_error, svd_rank=dora_rank)
    builder.count_uses(plan.targets.values())
    notes: set[str] = set()
    ranks: dict[str, int] = {}
    total = len(plan.targets)
    names = [f"{t.name}.{part}" for t in plan.targets.values() for part in ("lora_a", "lora_b")]
    meta = {"alpha": 0.0}                # known once every rank is; an f32 either way, so the header size holds
    try:
        with StreamedGGUFWriter(out, gguf_arch(base), names,
                                lambda kv: _write_metadata(kv, adapter, meta["alpha"])) as w:
            for i, target in enumerate(plan.targets.values()):
                ctx.check()
                ctx.report(i, total, target.name)
                factors = [(p, builder.module_factors(p, target)) for p in target.pieces]
                lora_a, lora_b = assemble_lora(target, factors)
                del factors
                for part, values in (("lora_a", lora_a), ("lora_b", lora_b)):
                    name = f"{target.name}.{part}"
                    try:
                        qtype = _tensor_qtype(outtype, name, values, notes)
                    except ValuesDoNotFit as exc:
                        raise AdapterFormatError(adapter.path, str(exc)) from None
                    w.add_tensor(name, values, qtype)
                ranks[target.name] = int(lora_b.shape[1])
            rank_set = set(ranks.values())
            alpha = meta["alpha"] = float(rank_set.pop()) if len(rank_set) == 1 else 0.0
            w.commit()
    finally:
        builder.close()
    ctx.report(total, total, "done")
    dora = {name: (r, e) for name, (r, e, _full) in builder.dora.items()}
    if dora:
        worst = max(e for _, e in dora.values())
        notes.add(f"DoRA is not low-rank: {len(dora)} module(s) converted by truncated SVD of their exact delta "
                  f"(max relative error {worst:.2e}, limit {max_error:g}); strength then scales the whole "
                  "DoRA delta linearly. `loradeck merge` bakes DoRA in exactly.")
    return ConvertResult(out, 2 * len(ranks), alpha, outtype, ranks, dora, warnings,
                         sorted(notes) + list(report.notes))


def _write_metadata(kv, adapter: Adapter, alpha: float) -> None:
    """The LoRA GGUF's key/value pairs, into the gguf.GGUFWriter `kv`."""
    import gguf
    kv.add_type(gguf.GGUFType.ADAPTER)
    kv.add_string(gguf.Keys.Adapter.TYPE, "lora")
    kv.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    name = adapter.metadata.get("name") or Path(str(adapter.path)).name
    if name:
        kv.add_name(str(name))
    if adapter.task_name:
        kv.add_string(gguf.Keys.Adapter.LORA_TASK_NAME, adapter.task_name)
    tokens = adapter.config.get("alora_invocation_tokens") if isinstance(adapter.config, dict) else None
    if tokens:
        if not all(isinstance(t, int) and t >= 0 for t in tokens):
            raise AdapterFormatError(adapter.path, "alora_invocation_tokens must be a list of token ids")
        kv.add_key_value(gguf.Keys.Adapter.ALORA_INVOCATION_TOKENS, [int(t) for t in tokens],
                         gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT32)   # llama.cpp wants u32
    kv.add_string("loradeck.source_format", adapter.format_id)
    if any(is_dense(m) for m in adapter):
        kv.add_string("loradeck.note", "DoRA modules stored as truncated-SVD LoRA deltas")


def rank_summary(ranks: dict[str, int]) -> str:
    counts = Counter(ranks.values())
    return ", ".join(f"rank {r} ×{n}" for r, n in sorted(counts.items()))
