"""The tiny GGUF bases llama.cpp's converter made load in llama.cpp and compute what transformers computes."""
from __future__ import annotations

import numpy as np
import pytest
from fixtures.tiny_gguf import ARCHS, TOKENS, tiny_gguf_bases


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_gguf_base_matches_transformers(arch, tiny_models):
    import torch
    from transformers import AutoModelForCausalLM

    path = tiny_gguf_bases()[arch]
    ours = tiny_models.logits(path)
    model = AutoModelForCausalLM.from_pretrained(tiny_models.hf(arch), dtype=torch.float32)
    with torch.no_grad():
        ref = model(torch.tensor([TOKENS])).logits[0].numpy()
    assert ours.shape == ref.shape
    assert np.abs(ref).mean() > 0.1          # logits are not negligible, so errors are visible
    # llama.cpp and transformers differ by a few 1e-3 on the same f32 weights (different kernels).
    assert np.abs(ours - ref).max() < 2e-2
