"""Benchmark a chat that outgrows the context: what the user waits for once the oldest turns are left out.

On bench_switch's ~750M-parameter f16 Llama with a rank-16 LoRA on every linear layer, the app's
default context (2,048 tokens), 2 threads, greedy 16-token replies, ~40-token questions, a chat that
starts just under the window's limit and goes on for --turns turns. Three engines, their turns
interleaved so a busy machine slows them alike:

    blocks      LoRA Deck: engines.context_window (whole turns left out, half the room at a time), and the
                app's after-answer step (a pre-warm of the window the next Send will use); the user
                sends once that step is done
    at once     the same windows, sent the moment the answer ends (no after-answer step): a move is
                then paid at the Send
    per turn    the simplest rule: leave out just enough of the oldest turns for each prompt to fit
                (the window moves on nearly every turn), with the same after-answer step

First-token time is the wall time from `generate()` to the first token; the after-answer step is
background work (the user reads the answer meanwhile) but a Send during it waits for the rest.

    python bench/bench_long_chat.py [--threads 2] [--turns 24] [--n-ctx 2048]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def per_turn_window(engine, messages, n_ctx):
    """Leave out the fewest oldest turns for the prompt and a quarter of the context to fit."""
    from adapters_backend.engines.context_window import ANSWER_SHARE, Window
    head = 1 if messages and messages[0].role == "system" else 0
    for start in [i for i in range(head, len(messages)) if messages[i].role == "user"]:
        given = messages[:head] + messages[start:]
        if len(engine.prompt_tokens(given)) + n_ctx // ANSWER_SHARE <= n_ctx:
            return Window(given, start - head)
    return Window(messages[:head] + messages[-1:], len(messages) - head - 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--turns", type=int, default=24)
    ap.add_argument("--reply", type=int, default=16, help="tokens per answer")
    ap.add_argument("--n-ctx", type=int, default=2048)
    args = ap.parse_args()

    import bench_engine as be
    from bench_switch import make_files, words

    from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams
    from adapters_backend.engines.context_window import fit_engine_window
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    from adapters_backend.paths import cache_dir

    if not be.VOCAB.exists():
        print(f"missing {be.VOCAB}; run `python3 dev.py test` once to fetch llama.cpp's sources", file=sys.stderr)
        return 2
    model, loras = make_files(cache_dir() / "bench-switch", 2048, 12, 5632, 16, 16, 4096)
    n_ctx = args.n_ctx
    params = SamplingParams(max_tokens=args.reply, temperature=0.0, repeat_penalty=1.0)
    variants = {"blocks": (fit_engine_window, True), "at once": (fit_engine_window, False),
                "per turn": (per_turn_window, True)}
    engines, chats = {}, {}
    for name in variants:
        engines[name] = e = LlamaCppEngine(n_ctx=n_ctx, n_threads=args.threads, n_threads_batch=args.threads)
        info = e.load(model)
        e.set_adapters([ActiveAdapter(loras[0], 0.8)])
    print(f"model: {info['n_params'] / 1e6:.0f}M parameters, f16; context {info['n_ctx']} tokens; "
          f"{args.threads} threads; replies of {args.reply} tokens", flush=True)
    # The same chat for all: just under the window's limit (a quarter for the answer, an eighth kept
    # for a question), so the window starts moving after a few turns.
    rng = np.random.default_rng(3)
    start = [ChatMessage("system", words(rng, 60))]
    probe = engines["blocks"]
    while len(probe.prompt_tokens(start)) < n_ctx * 5 // 8 - 80:
        start += [ChatMessage("user", words(rng, 30)), ChatMessage("assistant", words(rng, 40))]
    questions = [words(rng, 30) for _ in range(args.turns)]
    t0 = time.perf_counter()
    for name, (fit, _step) in variants.items():
        chats[name] = list(start)
        engines[name].prewarm(fit(engines[name], start, n_ctx).messages)
    print(f"first reads of the {len(probe.prompt_tokens(start))}-token chat: {time.perf_counter() - t0:.0f} s "
          "for three", flush=True)

    rows = {name: [] for name in variants}   # (first token s, tokens read, moved, after-answer step s, left out)
    for t in range(args.turns):
        order = list(variants) if t % 2 == 0 else list(reversed(variants))
        line = []
        for name in order:
            fit, step = variants[name]
            e, chat = engines[name], chats[name]
            before = rows[name][-1][4] if rows[name] else 0
            chat.append(ChatMessage("user", questions[t]))
            window = fit(e, chat, n_ctx)
            t0 = time.perf_counter()
            first, parts, last = None, [], None
            for last in e.generate(window.messages, params):
                first = first if first is not None else time.perf_counter() - t0
                parts.append(last.text)
            chat.append(ChatMessage("assistant", "".join(parts)))
            t0 = time.perf_counter()
            if step:
                e.prewarm(fit(e, chat, n_ctx).messages)
            after = time.perf_counter() - t0 if step else 0.0
            rows[name].append((first, last.prompt_tokens - last.prompt_cached, window.left_out != before, after,
                               window.left_out))
            line.append(f"{name} {first:.2f} s/{rows[name][-1][1]} read{' (moved)' if rows[name][-1][2] else ''}"
                        + (f" +{after:.1f} s" if step else ""))
        print(f"turn {t + 1}/{args.turns}: " + "; ".join(line), flush=True)

    def med(xs):
        return statistics.median(xs) if xs else float("nan")

    base = med([r[0] for r in rows["blocks"] if not r[2]])
    print(f"\nfirst-token time, medians (blocks, turns where the window stayed: {base:.2f} s):")
    for name in variants:
        moved = [r for r in rows[name] if r[2]]
        stayed = [r for r in rows[name] if not r[2]]
        steps = [r[3] for r in rows[name]]
        firsts = [r[0] for r in rows[name]]
        print(f"  {name:9s} window moved on {len(moved):2d} of {len(rows[name])} turns; first token median "
              f"{med(firsts):.2f} s ({med(firsts) / base:.2f}×), mean {statistics.mean(firsts):.2f} s "
              f"({statistics.mean(firsts) / base:.2f}×), worst {max(firsts):.2f} s; "
              f"on a move {med([r[0] for r in moved]):.2f} s ({med([r[0] for r in moved]) / base:.2f}×, "
              f"{med([r[1] for r in moved]):.0f} tokens read), otherwise {med([r[0] for r in stayed]):.2f} s; "
              + (f"after-answer step {med(steps):.1f} s median, {max(steps):.1f} s max, "
                 f"{sum(steps):.0f} s in all" if variants[name][1] else "no after-answer step"))
    for e in engines.values():
        e.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
