"""A llama.cpp LoRA GGUF whose tensors are integers or float64 passes every shape check, and llama.cpp
loads it and then crashes the process (SIGSEGV) in the first answer's matrix product. The engine hands
llama.cpp only F32, F16, BF16 and Q8_0 LoRA tensors as they are; anything else goes through the
converter, which refuses these by name, and the mix that was running stays."""
from __future__ import annotations

import engine_models as em
import numpy as np
import psutil
import pytest

from adapters_backend.engines.adapter_files import runs_as_is
from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams, run_to_text
from adapters_backend.errors import AdapterFormatError

GREEDY = SamplingParams(max_tokens=8, temperature=0.0, repeat_penalty=1.0)
ASK = [ChatMessage("user", "Name three colours of the rainbow.")]


@pytest.mark.parametrize(("dtype", "name"), [(np.int32, "I32"), (np.float64, "F64"), (np.int8, "I8")])
def test_a_lora_of_another_tensor_type_is_refused_by_name_and_the_mix_stays(tiny, make_engine, tmp_path, dtype, name):
    odd = em.write_lora(tmp_path / f"l1-{name}.gguf", tiny.l1, dtype=dtype)
    assert not runs_as_is(odd)
    engine = make_engine(tiny.base)
    engine.set_adapters([ActiveAdapter(tiny.l2_path, 0.5)])
    before = run_to_text(engine, ASK, GREEDY)
    with pytest.raises(AdapterFormatError) as err:
        engine.set_adapters([ActiveAdapter(odd, 1.0)])
    assert str(odd) in str(err.value) and f"stored as {name}" in str(err.value)
    # The refused file is let go at once, while the error (and its traceback) is still held.
    assert str(odd) not in {f.path for f in psutil.Process().open_files()}
    assert [a["path"] for a in engine.adapters()] == [str(tiny.l2_path)]
    assert run_to_text(engine, ASK, GREEDY) == before


def test_the_types_llama_cpp_computes_with_are_used_as_they_are(tiny):
    assert runs_as_is(tiny.l1_path) and runs_as_is(tiny.l1_f16_path)
