"""Fixtures for the engine tests: tiny GGUF models and LoRA files, built once per session."""
from __future__ import annotations

import types
from pathlib import Path

import engine_models as em
import numpy as np
import pytest

pytest.importorskip("llama_cpp")


@pytest.fixture(scope="session", autouse=True)
def _engine_cache(tmp_path_factory):
    """Derived and fused adapter files go to a temp cache, never the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LORADECK_CACHE_DIR", str(tmp_path_factory.mktemp("loradeck-cache")))
        yield


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, vocab_gguf):
    """A tiny Llama base and adapters for it:
    l1  r4, alpha 8 (scale 2), attn_q/attn_v/ffn_up + token_embd
    l2  r8, no alpha, attn_k/attn_output/ffn_gate/ffn_down
    l3  r4, no alpha, attn_q/ffn_down, layer 1 only
    big r16 on every linear + token_embd (a 2 MB adapter, for the memory test)
    plus adapters that must be refused and damaged files."""
    d = tmp_path_factory.mktemp("tiny")
    w = em.base_weights(32000, seed=0)
    ns = types.SimpleNamespace(dir=d, weights=w, vocab=vocab_gguf)
    ns.base = em.write_base(d / "base.gguf", w, vocab_gguf)
    ns.long_base = em.write_base(d / "long-base.gguf", w, vocab_gguf, context_length=1 << 24)   # "trained" long
    ns.l1 = em.make_lora(w, rank=4, seed=1, alpha=8.0, embed=True)
    ns.l2 = em.make_lora(w, rank=8, seed=2, targets=("attn_k", "attn_output", "ffn_gate", "ffn_down"))
    ns.l3 = em.make_lora(w, rank=4, seed=3, targets=("attn_q", "ffn_down"), layers=[1])
    ns.big = em.make_lora(w, rank=16, seed=4, targets=em.LINEARS, embed=True)
    for name in ("l1", "l2", "l3", "big"):
        setattr(ns, f"{name}_path", em.write_lora(d / f"{name}.gguf", getattr(ns, name)))
    ns.l1_f16_path = em.write_lora(d / "l1-f16.gguf", ns.l1, dtype=np.float16)
    # Refused: another architecture; same architecture but another width; tensors the base lacks.
    ns.qwen_path = em.write_lora(d / "qwen-lora.gguf", ns.l1, arch="qwen2")
    wide = em.Lora({"blk.0.attn_q.weight": (np.ones((4, 96), np.float32), np.ones((96, 4), np.float32))})
    ns.wide_path = em.write_lora(d / "wide-lora.gguf", wide)
    extra = em.Lora({"blk.7.attn_q.weight": (np.ones((4, 64), np.float32), np.ones((64, 4), np.float32))})
    ns.deep_path = em.write_lora(d / "deep-lora.gguf", extra)
    data = ns.l1_path.read_bytes()
    ns.truncated_path = d / "truncated.gguf"
    ns.truncated_path.write_bytes(data[: len(data) // 2])
    ns.junk_path = d / "junk.gguf"
    ns.junk_path.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    ns.text_path = d / "notes.gguf"
    ns.text_path.write_text("this is not a model\n")
    return ns


@pytest.fixture(scope="session")
def merged(tiny):
    """merged(mix, layer_factors=None) -> path of a base with Σ s·ΔW merged in (cached per mix)."""
    made: dict = {}

    def make(mix, layer_factors=None) -> Path:
        key = (tuple((id(lora), float(s)) for lora, s in mix), tuple(sorted((layer_factors or {}).items())))
        if key not in made:
            path = tiny.dir / f"merged-{len(made)}.gguf"
            made[key] = em.write_base(path, em.merged_weights(tiny.weights, mix, layer_factors), tiny.vocab)
        return made[key]

    return make


@pytest.fixture
def make_engine():
    """make_engine(model_path, **options) -> a loaded LlamaCppEngine (closed after the test)."""
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine

    engines = []

    def make(path, **options):
        options = {"n_ctx": 512, "n_threads": 1, "fuse_mixes": False, **options}
        e = LlamaCppEngine(**options)
        engines.append(e)
        e.load(path)
        return e

    yield make
    for e in engines:
        e.close()
