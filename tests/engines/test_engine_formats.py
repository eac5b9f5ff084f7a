"""Adapters in other formats reach llama.cpp through the convert feature (cached): a PEFT LoRA and a
LoHa on a tiny Llama that llama.cpp's own converter made, checked against PEFT's merge of the same
adapters (converted by llama.cpp), at two strengths and mixed."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapters_backend.engines.base import ActiveAdapter

pytest.importorskip("peft")
pytest.importorskip("llama_cpp")

@pytest.fixture(scope="module")
def lib():
    """Real PEFT adapters on the tiny models and their references (tests/fixtures/tiny_adapters.py)."""
    from fixtures import tiny_adapters
    from fixtures.tiny_gguf import llama_cpp_src
    if llama_cpp_src() is None:
        pytest.skip("llama.cpp sources are missing (run `python3 dev.py test` once)")
    return tiny_adapters


def engine_logits(engine, tokens) -> np.ndarray:
    llm = engine.llm
    llm.reset()
    llm.eval(list(tokens))
    import llama_cpp
    out = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),)).copy()
    llm.reset()
    return out


def test_peft_and_loha_adapters_run_through_the_converter(lib, make_engine):
    from fixtures.tiny_gguf import TOKENS, llama_logits, tiny_gguf_base

    base = tiny_gguf_base("llama")
    lora, loha = lib.make_adapter("llama", "lora"), lib.make_adapter("llama", "loha")
    refs = lib.reference_ggufs([("lora", "llama", [("llama", "lora", 0.7)]),
                                ("mix", "llama", [("llama", "lora", -0.5), ("llama", "loha", 1.3)])])
    e = make_engine(base)
    e.set_adapters([ActiveAdapter(lora, 0.7)])
    assert Path(e.adapters()[0]["gguf"]).suffix == ".gguf" and e.adapters()[0]["gguf"] != str(lora)
    ref = llama_logits(refs["lora"], TOKENS)[-1]
    assert np.abs(engine_logits(e, TOKENS) - ref).max() < 2e-3 * np.abs(ref).max()
    # The converted file is cached: the same adapter again is instant and the same file.
    gguf = e.adapters()[0]["gguf"]
    e.set_adapters([ActiveAdapter(lora, -0.5), ActiveAdapter(loha, 1.3)])
    assert e.adapters()[0]["gguf"] == gguf
    ref = llama_logits(refs["mix"], TOKENS)[-1]
    assert np.abs(engine_logits(e, TOKENS) - ref).max() < 2e-3 * np.abs(ref).max()


def test_an_adapter_for_another_model_gets_the_compatibility_message(lib, make_engine):
    from fixtures.tiny_gguf import tiny_gguf_base

    from adapters_backend.errors import IncompatibleAdapterError

    e = make_engine(tiny_gguf_base("llama"))
    e.set_adapters([ActiveAdapter(lib.make_adapter("llama", "lora"), 0.5)])
    with pytest.raises(IncompatibleAdapterError) as info:
        e.set_adapters([ActiveAdapter(lib.make_adapter("gpt2", "lora"), 1.0)])
    assert "incompatible" in str(info.value)
    assert [a["strength"] for a in e.adapters()] == [0.5]       # the previous mix stays
