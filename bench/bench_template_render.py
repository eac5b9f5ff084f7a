"""What running chat templates in their helper process costs: `python bench/bench_template_render.py`.

A model's chat template is rendered in a helper process (adapters_backend/chat/template_sandbox.py),
so a hostile one cannot hang or exhaust LoRA Deck. This times rendering one prompt there against
rendering it in this process (llama-cpp-python's Jinja2ChatFormatter, what LoRA Deck did before), for
chats of 4 to 2,000 messages, with a ChatML template (Qwen's shape) and the demo model's own. Also
the helper's start, paid once per LoRA Deck process. Medians of --runs; the figure is the difference
per render (a Send renders one prompt, plus up to a dozen when a long chat's window is placed).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def chat(n: int) -> list[dict]:
    words = "the harbour keeper writes the weather in a ledger every morning".split()
    return [{"role": "system", "content": "You are brief."}] + [
        {"role": "user" if i % 2 == 0 else "assistant", "content": " ".join(words[(i + k) % len(words)] for k in range(60))}
        for i in range(n)]


def median_ms(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=21)
    args = ap.parse_args()

    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    from adapters_backend import demo
    from adapters_backend.chat.template_sandbox import SANDBOX
    from adapters_backend.gguf.header import read_header

    t = time.perf_counter()
    SANDBOX.render("{{ 1 }}", "", "", True, [])
    print(f"helper start (once per process): {1000 * (time.perf_counter() - t):.0f} ms")
    demo_template = read_header(demo.demo_model_path()).metadata["tokenizer.chat_template"]
    print(f"{'template':>8} {'messages':>8} {'in process':>11} {'helper':>9} {'difference':>11}")
    for name, template in (("chatml", CHATML), ("demo", demo_template)):
        local = Jinja2ChatFormatter(template=template, eos_token="</s>", bos_token="<s>")
        for n in (4, 40, 400, 2000):
            messages = chat(n)
            here = median_ms(lambda m=messages, f=local: f(messages=m), args.runs)
            there = median_ms(lambda m=messages, tp=template: SANDBOX.render(tp, "<s>", "</s>", True, m), args.runs)
            print(f"{name:>8} {n:>8} {here:>9.2f} ms {there:>6.2f} ms {there - here:>+8.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
