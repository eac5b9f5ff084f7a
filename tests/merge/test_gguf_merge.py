"""merge into GGUF: exact in f32 (= PEFT's merge, = the runtime LoRA), quantized bases stay within their
own quantization error, untouched tensors are byte-identical, several adapters with strengths, and
failures leave no file."""
from __future__ import annotations

import numpy as np
import pytest
from gguf import GGUFReader

from adapters_backend.errors import IncompatibleAdapterError, JobCancelled
from adapters_backend.gguf.tensors import decode
from adapters_backend.jobs import JobContext
from adapters_backend.merge.gguf_merge import merge_into_gguf

TOL = 3e-4
CASES = [("llama", "lora", -0.5), ("llama", "dora", 1.0), ("llama", "dora", 0.5), ("llama", "lokr", 1.0),
         ("llama", "embed", 0.7), ("phi3", "adalora", 1.0), ("gpt2", "patterns", -1.0), ("gemma", "loha", 0.5),
         ("bloom", "rslora", 1.0), ("qwen2", "embed", 1.0), ("gpt2", "embed", 1.0)]


def max_diff(a, b) -> float:
    return float(np.abs(a - b).max())


def tensors(path):
    return {t.name: t for t in GGUFReader(path).tensors}


@pytest.mark.parametrize("arch,variant,s", CASES, ids=[f"{a}-{v}-{s}" for a, v, s in CASES])
def test_f32_merge_equals_peft_merge(arch, variant, s, tiny_models, tiny_adapters, tmp_path):
    ref = tiny_adapters.references([("r", arch, [(arch, variant, s)])])["r"]
    out = tmp_path / "merged.gguf"
    result = merge_into_gguf(tiny_models.gguf(arch), [(tiny_adapters.make(arch, variant), s)], out)
    merged = tiny_models.logits(out)
    assert max_diff(merged, tiny_models.logits(ref)) <= TOL
    assert max_diff(merged, tiny_models.logits(tiny_models.gguf(arch))) > 100 * TOL
    assert result.touched and result.copied
    assert set(result.types.values()) == {"F32"}


def test_merge_equals_runtime_lora(tiny_models, tiny_adapters, tmp_path):
    from adapters_backend.convert.to_gguf import convert_to_gguf
    base = tiny_models.gguf("mistral")
    adapter = tiny_adapters.make("mistral", "loha")
    lora = convert_to_gguf(adapter, base, tmp_path / "lora.gguf").path
    merged = merge_into_gguf(base, [f"{adapter}:-0.8"], tmp_path / "m.gguf").path
    assert max_diff(tiny_models.logits(merged), tiny_models.logits(base, [(lora, -0.8)])) <= TOL


def test_several_adapters_with_strengths(tiny_models, tiny_adapters, tmp_path):
    arch, mix = "qwen2", [("dora", 0.6), ("lora", 1.0), ("adalora", -0.5)]   # DoRA first: its ΔW uses the base
    ref = tiny_adapters.references([("r", arch, [(arch, v, s) for v, s in mix])])["r"]
    out = merge_into_gguf(tiny_models.gguf(arch), [(tiny_adapters.make(arch, v), s) for v, s in mix],
                          tmp_path / "m.gguf").path
    assert max_diff(tiny_models.logits(out), tiny_models.logits(ref)) <= TOL


@pytest.mark.parametrize("qtype", ["f16", "bf16", "q8_0"])
def test_quantized_base_stays_within_its_quantization_error(qtype, tiny_models, tiny_adapters, tmp_path):
    arch = "llama"
    base = tiny_models.gguf(arch, qtype)
    adapter = tiny_adapters.make(arch, "lora")
    out = tmp_path / "m.gguf"
    result = merge_into_gguf(base, [(adapter, 1.0)], out)
    before, after = tensors(base), tensors(out)
    assert list(before) == list(after)
    meta = [{k: f.contents() for k, f in GGUFReader(p).fields.items() if not k.startswith("GGUF.")} for p in (base, out)]
    assert meta[0] == meta[1]                                             # metadata copied verbatim
    for name, t in before.items():
        assert after[name].tensor_type == t.tensor_type, name          # same type as the base
        if name not in result.touched:
            assert np.array_equal(np.asarray(after[name].data), np.asarray(t.data)), name   # byte for byte
    # a touched tensor is the re-quantized sum: within one quantization step of base + ΔW
    from adapters_backend.convert.to_gguf import convert_to_gguf
    lora = GGUFReader(convert_to_gguf(adapter, tiny_models.gguf(arch), tmp_path / "l.gguf").path)
    lt = {t.name: np.asarray(t.data, dtype=np.float32) for t in lora.tensors}
    name = "blk.1.ffn_down.weight"
    shape = tuple(reversed(before[name].shape.tolist()))
    exact = decode(before[name].data, before[name].tensor_type, shape) + lt[name + ".lora_b"] @ lt[name + ".lora_a"]
    got = decode(after[name].data, after[name].tensor_type, shape)
    step = {"f16": 1e-3, "bf16": 8e-3, "q8_0": 1 / 127}[qtype] * np.abs(exact).max()
    assert max_diff(got, exact) <= step
    # end to end: merged-quantized vs exact f32 reference is no worse than the base's own quantization
    ref = tiny_models.logits(tiny_adapters.references([("r", arch, [(arch, "lora", 1.0)])])["r"])
    base_err = max_diff(tiny_models.logits(base), tiny_models.logits(tiny_models.gguf(arch)))
    assert max_diff(tiny_models.logits(out), ref) <= 2 * base_err + TOL


def test_outtype_and_unsupported_types(tiny_models, tiny_adapters, tmp_path):
    import gguf

    from adapters_backend.merge.gguf_merge import _out_qtype
    result = merge_into_gguf(tiny_models.gguf("llama"), [(tiny_adapters.make("llama", "lora"), 1.0)],
                             tmp_path / "m.gguf", outtype="q8_0")
    assert set(result.types.values()) == {"Q8_0"}
    notes: set[str] = set()
    Q = gguf.GGMLQuantizationType
    assert _out_qtype(Q.Q4_K, (64, 256), None, notes) == Q.Q8_0     # gguf-py cannot write K-quants
    assert any("Q4_K" in n for n in notes)
    assert _out_qtype(Q.Q4_0, (64, 64), None, set()) == Q.Q4_0


def test_incompatible_adapter_no_file(tiny_models, tiny_adapters, tmp_path):
    with pytest.raises(IncompatibleAdapterError):
        merge_into_gguf(tiny_models.gguf("phi2"), [(tiny_adapters.make("llama", "lora"), 1.0)], tmp_path / "m.gguf")
    assert list(tmp_path.iterdir()) == []


def test_cancel_leaves_no_file(tiny_models, tiny_adapters, tmp_path):
    seen = []
    ctx = JobContext(lambda done, total, msg: (seen.append(msg), ctx.cancel() if done >= 5 else None))
    with pytest.raises(JobCancelled):
        merge_into_gguf(tiny_models.gguf("llama"), [(tiny_adapters.make("llama", "lora"), 1.0)],
                        tmp_path / "m.gguf", ctx=ctx)
    assert list(tmp_path.iterdir()) == [] and len(seen) >= 5


def test_cli_merge(tiny_models, tiny_adapters, tmp_path, capsys):
    from adapters_backend.cli.main import main
    out = tmp_path / "m.gguf"
    rc = main(["merge", "--base", str(tiny_models.gguf("llama")), "--adapter",
               f"{tiny_adapters.make('llama', 'lora')}:0.5", "-a", str(tiny_adapters.make("llama", "loha")),
               "-o", str(out)])
    assert rc == 0 and out.is_file()
    assert "14 tensors merged" in capsys.readouterr().out


def test_k_quant_base_keeps_its_types(tiny_models, tiny_adapters, tmp_path):
    """gguf-py cannot write K-quants: the changed tensors are re-quantized by llama.cpp's own quantizer
    (same file type as the base), and every tensor keeps the base's type."""
    from fixtures.tiny_gguf import tiny_quantized_base
    arch = "llama-wide"                                  # rows of whole 256-value K blocks
    base = tiny_quantized_base(arch, "Q4_K_M")
    kinds = {t.name: t.tensor_type.name for t in GGUFReader(base).tensors}
    assert {"Q4_K", "Q6_K"} <= set(kinds.values())
    out = tmp_path / "m.gguf"
    reports = []
    result = merge_into_gguf(base, [(tiny_adapters.make(arch, "lora"), 1.0)], out,
                             ctx=JobContext(on_progress=lambda d, t, m: reports.append((d / t, m))))
    assert {t.name: t.tensor_type.name for t in GGUFReader(out).tensors} == kinds
    assert any("re-quantized by llama.cpp" in n for n in result.notes)
    # The progress moves all along, through llama.cpp's re-quantization too (one step per tensor).
    fractions = [f for f, _m in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    requant = [(f, m) for f, m in reports if m.startswith("re-quantizing with llama.cpp: ")]
    assert len(requant) == len(kinds) and all(0.5 <= f < 1.0 for f, _m in requant)
    assert len({f for f, _m in requant}) == len(kinds)
    assert requant[-1][1].endswith(f"({len(kinds)}/{len(kinds)})")
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]          # stage files removed
    ref = tiny_models.logits(tiny_adapters.references([("r", arch, [(arch, "lora", 1.0)])])["r"])
    f32 = tiny_models.logits(tiny_models.gguf(arch))
    base_err = max_diff(tiny_models.logits(base), f32)
    assert max_diff(tiny_models.logits(out), ref) <= 2 * base_err
    assert max_diff(ref, f32) > 2 * base_err                 # the adapter's effect is larger than the noise


@pytest.mark.parametrize(("outtype", "limit"), [("f16", "the 65,504 that F16 holds"),
                                               ("q8_0", "8,319,008, the most LoRA Deck stores as Q8_0")])
def test_a_merge_past_the_types_range_is_refused_with_no_file(outtype, limit, tiny_models, tiny_adapters, tmp_path):
    """Merged weights past what the output type holds became infinities (numpy only warned) and the
    merge said it had succeeded; now it stops, naming the tensor, and writes nothing. f32 holds them."""
    from adapters_backend.gguf.tensors import first_nonfinite
    from adapters_backend.merge.common import MergeError
    base, adapter = tiny_models.gguf("llama"), tiny_adapters.make("llama", "lora")
    with pytest.raises(MergeError) as err:
        merge_into_gguf(base, [(adapter, 1e9)], tmp_path / "m.gguf", outtype=outtype)
    msg = str(err.value)
    assert msg.startswith("merged tensor 'blk.0.") and limit in msg
    assert msg.endswith("lower the strengths, or store the changed tensors as --outtype bf16 or f32")
    assert list(tmp_path.iterdir()) == []
    merge_into_gguf(base, [(adapter, 1e9)], tmp_path / "wide.gguf", outtype="f32")
    assert first_nonfinite(tmp_path / "wide.gguf") is None


def test_a_k_quant_merge_past_the_range_is_refused_before_llama_cpp_quantizes(tiny_models, tiny_adapters, tmp_path):
    from fixtures.tiny_gguf import tiny_quantized_base

    from adapters_backend.merge.common import MergeError
    arch = "llama-wide"
    with pytest.raises(MergeError, match=r"the most LoRA Deck stores as Q(4|6)_K; lower the strengths, or"):
        merge_into_gguf(tiny_quantized_base(arch, "Q4_K_M"), [(tiny_adapters.make(arch, "lora"), 1e9)],
                        tmp_path / "m.gguf")
    assert list(tmp_path.iterdir()) == []                     # the f32 stage is gone too


def test_a_damaged_base_is_named_as_such_not_blamed_on_the_strengths(tiny_models, tiny_adapters, tmp_path):
    import shutil

    from adapters_backend.gguf.header import read_header
    from adapters_backend.merge.common import MergeError
    base = tmp_path / "damaged.gguf"
    shutil.copy(tiny_models.gguf("llama"), base)
    info = read_header(base).tensors["blk.0.attn_q.weight"]
    assert info.type_name == "F32"
    with open(base, "r+b") as f:                                  # one weight of a tensor the adapter changes
        f.seek(info.offset + 4 * 7)
        f.write(np.float32(np.nan).tobytes())
    with pytest.raises(MergeError, match=r"^merged tensor 'blk\.0\.attn_q\.weight': its values are not all numbers "
                                         r"\(NaN or infinite\); the base model or an adapter is damaged$"):
        merge_into_gguf(base, [(tiny_adapters.make("llama", "lora"), 0.5)], tmp_path / "m.gguf", outtype="f32")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.gguf"]
