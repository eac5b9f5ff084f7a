"""Bake adapters into a GGUF model: W' = W + Σ sᵢ·ΔWᵢ, tensor by tensor, row block by row block.

* Untouched tensors are copied byte for byte (quantized or not).
* A touched tensor is dequantized (gguf.quants), ΔW added in float32, and re-quantized to the same
  type when gguf-py can (F32, F16, BF16, Q8_0, Q4_0/1, Q5_0/1, …). K-quants and IQ types gguf-py can
  only read: then the changed tensors go through libllama's own quantizer (llama_model_quantize with
  the base's file type, which copies tensors already of their type) and the result is kept only if
  every tensor has the base's type again; otherwise they are written as Q8_0 and a note says so.
  `outtype` chooses the type of the touched tensors explicitly.
* Low-rank variants add B[rows]·A per row block, so memory stays at one block plus the factors;
  DoRA's exact ΔW needs the whole weight (its norm), and gets it.
* Memory: the metadata block is copied verbatim (gguf.header; no per-token objects) and tensors are
  read with plain file reads (gguf.tensors.TensorFile), not a memory map, so the copied model never
  becomes resident. Output is atomic (gguf.writer).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..atomic import PUBLIC, AtomicFile
from ..convert.factors import FactorBuilder, assemble_lora, is_dense
from ..convert.targets import plan_targets
from ..core.base_model import load_base_model
from ..core.compat import require_compatible
from ..errors import BaseModelError
from ..gguf.header import GGUFError, GGUFHeader, TensorInfo, read_header
from ..gguf.tensors import TensorFile, can_encode, decode, encode, nbytes_of, qtype_of
from ..gguf.writer import DeclaredGGUFWriter
from ..jobs import JobContext
from ..value_range import ValuesDoNotFit, require_fit
from .common import MergeError, MergeResult, read_adapters

CHUNK_BYTES = 32 * 1024 * 1024      # float32 bytes per row block of a touched tensor
COPY_BYTES = 16 * 1024 * 1024      # bytes per read when copying an untouched tensor


def _out_qtype(base_type, shape, outtype: str | None, notes: set[str]):
    import gguf
    if outtype:
        q = qtype_of(outtype)
        if can_encode(q, shape):
            return q
        notes.add(f"{outtype}: tensors whose rows are not whole blocks were written as f16")
        return gguf.GGMLQuantizationType.F16
    if can_encode(base_type, shape):
        return base_type
    q8 = gguf.GGMLQuantizationType.Q8_0
    fallback = q8 if can_encode(q8, shape) else gguf.GGMLQuantizationType.F16
    notes.add(f"gguf-py cannot write {base_type.name}: the changed tensors were written as {fallback.name} "
              f"(the others keep {base_type.name}); pass --outtype to choose")
    return fallback


def merge_into_gguf(base_path, adapters, out, *, outtype: str | None = None,
                    ctx: JobContext | None = None) -> MergeResult:
    """Merge [(adapter path | Adapter | "PATH:S", strength)…] into the GGUF `base_path`, writing `out`."""
    ctx = ctx or JobContext()
    base = load_base_model(base_path)
    if base.kind != "gguf":
        raise MergeError(f"{base_path}: not a GGUF file (use an HF folder output for HF bases)")
    if Path(out).resolve() == Path(base_path).resolve():
        raise MergeError(f"{out}: the output must not be the base model file itself")
    if base.gguf_parts:
        raise MergeError(f"{base_path}: a model split in {len(base.gguf_parts) + 1} parts; a merge writes one "
                         "file from one, so join the parts first (llama.cpp: llama-gguf-split --merge) or use "
                         "the adapters at run time")
    loaded = read_adapters(adapters, base)
    warnings: list[str] = []
    notes: set[str] = set()
    contributions: dict[str, list] = {}
    builders = []
    for adapter, strength in loaded:
        require_compatible(adapter, base)
        plan = plan_targets(adapter, base, allow_full=True, runtime=False)
        warnings += [f"{adapter.path}: {w}" for w in plan.warnings()]
        warnings += [f"{adapter.path}: the bias update of {m.name} (lora_bias) is not merged" for m in adapter
                     if "bias" in m.roles and m.variant not in ("bias", "full")]
        builder = FactorBuilder(adapter, base)
        builders.append(builder)
        for target in plan.targets.values():
            contributions.setdefault(target.name, []).append((builder, target, strength))
        if strength != 1.0 and any(is_dense(m) for m in adapter):
            notes.add("DoRA at strength s is merged as W + s·(W_DoRA − W), the linear reading of strength")
    if base.tied and "token_embd.weight" in contributions:
        notes.add("the base ties its output layer to token_embd, so merging an embedding update changes both "
                  "(as PEFT's merge does); a runtime LoRA changes only the input side")

    try:
        layout = read_header(base.path)
    except (GGUFError, OSError) as exc:
        raise BaseModelError(base.path, f"not a readable GGUF file ({exc})") from None
    result = MergeResult(Path(out))
    try:
        unsupported = [t.name for t in layout.tensors.values() if t.name in contributions
                       and not outtype and not can_encode(t.qtype, t.shape)]
        done = False
        if unsupported and base.file_type is not None:
            done = _merge_via_llama_quantize(base, layout, contributions, Path(out), ctx, result, notes)
        if not done:
            _write_merged(base, layout, contributions, Path(out), outtype, ctx, result, notes)
    finally:
        for b in builders:
            b.close()
    result.warnings = warnings
    result.notes = sorted(notes)
    return result


def _write_merged(base, layout: GGUFHeader, contributions, out: Path, outtype, ctx, result: MergeResult,
                  notes: set[str], force_f32: bool = False) -> None:
    """One streamed pass: copy untouched tensors, merge touched ones (as `force_f32` or their planned type)."""
    import gguf

    raw = TensorFile(base.path, layout)
    try:
        with DeclaredGGUFWriter(out, base.arch_name, copy_kv_from=layout) as w:
            plan_types = {}
            for t in layout.tensors.values():
                shape, qtype, nbytes = t.shape, t.qtype, t.nbytes
                if t.name in contributions:
                    qtype = gguf.GGMLQuantizationType.F32 if force_f32 else _out_qtype(t.qtype, shape, outtype, notes)
                    nbytes = nbytes_of(shape, qtype)
                    plan_types[t.name] = qtype
                w.declare(t.name, shape, qtype, nbytes)
            w.begin()
            total = len(layout.tensors)
            for i, t in enumerate(layout.tensors.values()):
                ctx.check()
                ctx.report(i, total, t.name)
                w.begin_tensor(t.name)
                if t.name in contributions:
                    # The f32 stage of a re-quantized merge must fit the base's type it becomes.
                    _merge_tensor(t, plan_types[t.name], t.qtype if force_f32 else plan_types[t.name],
                                  contributions[t.name], raw, w)
                    result.touched.append(t.name)
                    result.types[t.name] = plan_types[t.name].name
                else:
                    for off in range(0, t.nbytes, COPY_BYTES):
                        w.write_data(raw.raw(t, off, min(COPY_BYTES, t.nbytes - off)))
                    result.copied += 1
                w.end_tensor()
            w.commit()
            ctx.report(total, total, "done")
    finally:
        raw.close()


def _merge_via_llama_quantize(base, layout: GGUFHeader, contributions, out: Path, ctx, result: MergeResult,
                              notes: set[str]) -> bool:
    """K-quants/IQ types (which gguf-py cannot write): merge with the changed tensors in F32, then let
    libllama's own quantizer (llama_model_quantize, same file type as the base) re-quantize them; it
    copies tensors already of their target type. Kept only if every tensor ends up with the base's
    type; otherwise returns False (the caller falls back to Q8_0 for the changed tensors)."""
    import ctypes

    import llama_cpp

    expected = {t.name: t.ggml_type for t in layout.tensors.values()}
    stage = out.with_name(f".{out.name}.{os.getpid()}.f32-stage.gguf")   # written atomically itself
    quantized = AtomicFile(out, mode=PUBLIC)
    try:
        # Progress: the f32 stage is the first half, llama.cpp's quantizer (one log line per tensor)
        # the second.
        _write_merged(base, layout, contributions, stage, None, _Part(ctx, 0.0, 0.5), result, set(),
                      force_f32=True)
        ctx.check()
        quantizing = _Part(ctx, 0.5, 0.5)
        quantizing.report(0, 1, "re-quantizing with llama.cpp")
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = int(base.file_type)
        params.nthread = 0
        from ..engines import llama_log
        # llama.cpp's per-tensor log goes to Python logging, and its "[  i/  n] name" lines to the progress.
        with llama_log.capture(on_message=lambda text: _quantize_progress(text, quantizing)) as log_lines:
            rc = llama_cpp.llama_model_quantize(str(stage).encode(), str(quantized.tmp).encode(),
                                                ctypes.byref(params))
        quantizing.report(1, 1, "re-quantized")
        got = {n: t.ggml_type for n, t in read_header(quantized.tmp).tensors.items()} if rc == 0 else {}
        if rc != 0 or got != expected:
            why = log_lines.reason() if rc != 0 else "other tensor types came out"
            notes.add(f"llama.cpp's quantizer could not reproduce the base's tensor types ({why or 'failed'}); "
                      "the changed tensors were written as Q8_0 instead")
            result.touched.clear()
            result.types.clear()
            result.copied = 0
            return False
        quantized.commit()
        base_types = {t.name: t.type_name for t in layout.tensors.values()}
        for name in result.types:
            result.types[name] = base_types[name]
        notes.add("the changed tensors were re-quantized by llama.cpp's own quantizer to the base's types "
                  "(without an importance matrix, if the base used one)")
        return True
    finally:
        stage.unlink(missing_ok=True)
        if not quantized.done:
            quantized.discard()


class _Part:
    """One stage of a job, reporting its progress as a share [start, start + share) of the whole."""

    def __init__(self, ctx: JobContext, start: float, share: float):
        self._ctx, self._start, self._share = ctx, start, share

    def report(self, done: float, total: float, message: str = "") -> None:
        if total > 0:
            self._ctx.report(self._start + self._share * min(max(done / total, 0.0), 1.0), 1.0, message)

    def check(self) -> None:
        self._ctx.check()

    def cancelled(self) -> bool:
        return self._ctx.cancelled()


_QUANT_LINE = re.compile(r"^\s*\[\s*(\d+)\s*/\s*(\d+)\]\s+(\S+)")


def _quantize_progress(text: str, part: _Part) -> None:
    """llama_model_quantize logs "[  12/ 201] blk.1.attn_q.weight - [...], type = …" per tensor."""
    m = _QUANT_LINE.match(text)
    if m:
        done, total = int(m.group(1)), int(m.group(2))
        part.report(done - 1, total, f"re-quantizing with llama.cpp: {m.group(3)} ({done}/{total})")


def _merge_tensor(t: TensorInfo, out_qtype, final_qtype, contribs, raw: TensorFile, w: DeclaredGGUFWriter) -> None:
    shape = t.shape
    if len(shape) != 2:
        raise MergeError(f"{t.name}: only 2-D tensors can be merged (shape {shape})")
    rows, cols = shape
    # Per adapter: one low-rank pair for all its low-rank pieces, dense rows for the others.
    low: list[tuple[np.ndarray, np.ndarray, bool, float]] = []
    dense: list[tuple[np.ndarray, slice, float]] = []
    whole = None
    for builder, target, strength in contribs:
        lr = [p for p in target.pieces if not is_dense(p.module)]
        if lr:
            factors = [(p, builder.module_factors(p, target)) for p in lr]
            a, b = assemble_lora(target, factors)
            low.append((a, b, target.kind == "embedding", strength))
        for p in target.pieces:
            if is_dense(p.module):
                if whole is None:
                    whole = raw.read(t.name)
                delta, sl = builder.gguf_delta(p, target, w_gguf=whole)
                dense.append((delta, sl, strength))
    row_bytes = t.nbytes // rows
    step = max(1, CHUNK_BYTES // (4 * cols))
    for r0 in range(0, rows, step):
        r1 = min(rows, r0 + step)
        if whole is not None:
            chunk = whole[r0:r1].copy()
        else:
            buf = np.frombuffer(raw.raw(t, r0 * row_bytes, (r1 - r0) * row_bytes), dtype=np.uint8)
            chunk = decode(buf.reshape(r1 - r0, row_bytes), t.qtype, (r1 - r0, cols)).copy()
        for a, b, embedding, s in low:
            if embedding:   # token_embd: lora_a (vocab, R), lora_b (dim, R), ΔE = lora_a·lora_bᵀ
                chunk += np.float32(s) * (a[r0:r1] @ b.T)
            else:
                chunk += np.float32(s) * (b[r0:r1] @ a)
        for delta, sl, s in dense:
            lo, hi = max(r0, sl.start), min(r1, sl.stop)
            if lo < hi:
                chunk[lo - r0:hi - r0] += np.float32(s) * delta[lo - sl.start:hi - sl.start]
        try:
            require_fit(chunk, final_qtype.name)
        except ValuesDoNotFit as exc:
            wider = "" if final_qtype.name in ("F32", "BF16") else ", or store the changed tensors as --outtype bf16 or f32"
            remedy = "the base model or an adapter is damaged" if exc.not_numbers else f"lower the strengths{wider}"
            raise MergeError(f"merged tensor {t.name!r}: {exc}; {remedy}") from None
        w.write_data(encode(chunk, out_qtype))
