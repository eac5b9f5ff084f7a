"""Drive the demo model through llama-cpp-python with live adapter strengths (test helper).

Uses the low-level adapter API the app's engine uses: adapters are loaded once, strengths change
with ``llama_set_adapters_lora``, and the context is reset after each change.
"""

from __future__ import annotations

import ctypes
from pathlib import Path


class DemoChat:
    def __init__(self, model_path: Path, n_ctx: int = 512):
        import llama_cpp

        self._lib = llama_cpp
        self.llm = llama_cpp.Llama(model_path=str(model_path), n_ctx=n_ctx, n_threads=2, n_batch=256,
                                   seed=0, verbose=False)
        self.adapters: dict[str, object] = {}

    def load_adapter(self, name: str, gguf_path: Path) -> None:
        adapter = self._lib.llama_adapter_lora_init(self.llm.model, str(gguf_path).encode("utf-8"))
        if not adapter:  # a NULL LP_c_void_p is falsy, not None
            raise RuntimeError(f"llama.cpp rejected {gguf_path}")
        self.adapters[name] = adapter

    def set_strengths(self, strengths: dict[str, float]) -> None:
        items = [(self.adapters[n], float(s)) for n, s in strengths.items() if s != 0.0]
        if not items:
            self._lib.llama_set_adapters_lora(self.llm.ctx, None, 0, None)
        else:
            arr = (self._lib.llama_adapter_lora_p_ctypes * len(items))(*[a for a, _ in items])
            scales = (ctypes.c_float * len(items))(*[s for _, s in items])
            self._lib.llama_set_adapters_lora(self.llm.ctx, arr, len(items), scales)
        self.llm.reset()  # K/V computed under the old adapters must not be reused

    def answer(self, question: str, max_tokens: int = 60) -> str:
        reply = self.llm.create_chat_completion(
            messages=[{"role": "user", "content": question}], temperature=0.0, max_tokens=max_tokens, seed=0)
        return reply["choices"][0]["message"]["content"]

    def answers(self, questions: list[str], strengths: dict[str, float]) -> list[str]:
        self.set_strengths(strengths)
        return [self.answer(q) for q in questions]

    def close(self) -> None:
        self.set_strengths({})
        self.llm.close()
