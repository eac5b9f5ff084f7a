"""Convert and merge calls the dialogs make, mapped onto adapters_backend.convert / .merge.

Plain functions run inside JobRunner jobs (they may block) and take the job's context.
"""
from __future__ import annotations

from pathlib import Path

# Blend methods the merge dialog offers: "exact" keeps every factor (rank = sum of ranks, no error);
# "reduce to rank 16" compresses each module by SVD (the error is reported in the result's notes).
BLEND_METHODS = {"exact (sum of ranks)": None, "reduce to rank 16": 16, "reduce to rank 64": 64}


def blend_methods() -> list[str]:
    return list(BLEND_METHODS)


def _library_install(path: Path, ctx) -> None:
    from adapters_backend.library import Library
    Library().install(str(path), ctx=ctx, provenance={"source": "local:" + str(path)})


def convert(src: str, out: str, base: str | None, outtype: str, add_to_library: bool, ctx=None) -> str:
    """A llama.cpp LoRA GGUF of `src` for `base` (a GGUF model or HF folder) at `out`."""
    from adapters_backend.convert.to_gguf import convert_to_gguf
    if not base:
        raise ValueError("Choose the base model the adapter is for (a GGUF file or a model folder): the "
                         "converter takes tensor names and shapes from it.")
    result = convert_to_gguf(src, base, Path(out), outtype=None if outtype in ("", "auto") else outtype, ctx=ctx)
    if add_to_library:
        _library_install(Path(result.path), ctx)
    return str(result.path)


def blend(entries: list[tuple[str, float]], out: str, method: str, base: str | None = None, ctx=None) -> str:
    """Several adapters at fixed strengths → one PEFT adapter folder (added to the library). With `base`
    (the loaded model) each adapter is checked against it, and DoRA adapters can be blended at all:
    their exact update needs the base weights."""
    from adapters_backend.merge.blend import blend as blend_adapters
    out_path = Path(out)
    if out_path.suffix:                      # a PEFT adapter is a folder
        out_path = out_path.with_suffix("")
    result = blend_adapters([(p, s) for p, s in entries], out_path, rank=BLEND_METHODS.get(method), base=base,
                            ctx=ctx)
    _library_install(Path(result.path), ctx)
    return str(result.path)


def merge_into_base(base: str, entries: list[tuple[str, float]], out: str, ctx=None) -> str:
    """Bake adapters into a copy of the base model: GGUF → GGUF, HF folder → HF folder."""
    specs = [(p, s) for p, s in entries]
    if Path(base).is_dir():
        from adapters_backend.merge.hf_merge import merge_into_hf
        out_path = Path(out).with_suffix("") if Path(out).suffix == ".gguf" else Path(out)
        return str(merge_into_hf(base, specs, out_path, ctx=ctx).path)
    from adapters_backend.merge.gguf_merge import merge_into_gguf
    return str(merge_into_gguf(base, specs, Path(out), ctx=ctx).path)
