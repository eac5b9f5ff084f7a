"""What Continue costs the user: `python bench/bench_continue.py [--threads 2] [--rounds 3]`.

On bench_switch's ~750M-parameter f16 Llama (random weights, real vocabulary) and a ~2k-token
conversation, 2 threads, greedy: a question is answered with --reply tokens (cut at Max tokens, as
random weights always are), then the answer is continued for --reply tokens more. First-token times,
medians of the rounds, all from this run:

    same mix      the next question's first token (the baseline: the conversation is in the cache)
    continue      Continue's first token: the cache holds the conversation and the answer so far
    no cache      the same continuation on a fresh engine (what it would cost to read it all again)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def first_token(engine, messages, params) -> tuple[float, str, object]:
    t0 = time.perf_counter()
    first, parts, last = None, [], None
    for last in engine.generate(messages, params):
        first = first if first is not None else time.perf_counter() - t0
        parts.append(last.text)
    return first, "".join(parts), last


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reply", type=int, default=16, help="tokens of the cut answer, and of its continuation")
    ap.add_argument("--conversation", type=int, default=2000, help="tokens of conversation before the turns")
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--folder", type=Path, default=None, help="where the model files go (default: cache)")
    args = ap.parse_args()

    import bench_engine as be
    from bench_switch import Chat, make_files
    if not be.VOCAB.exists():
        print(f"missing {be.VOCAB}; run `python3 dev.py test` once to fetch llama.cpp's sources", file=sys.stderr)
        return 2
    from adapters_backend.engines.base import ChatMessage, SamplingParams
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    from adapters_backend.paths import cache_dir
    model, _loras = make_files(args.folder or cache_dir() / "bench-switch", 2048, 12, 5632, 16, 16, args.n_ctx)
    options = {"n_ctx": args.n_ctx, "n_threads": args.threads, "fuse_mixes": False}
    engine = LlamaCppEngine(**options)
    engine.load(model)
    params = SamplingParams(max_tokens=args.reply, temperature=0.0, repeat_penalty=1.0)
    chat = Chat(engine, args.conversation, seed=3)
    print(f"conversation of {len(engine.prompt_tokens(chat.messages)):,} tokens, answers of {args.reply} tokens",
          flush=True)
    same, going_on, cold, cached = [], [], [], []
    for _round in range(args.rounds):
        t_same, _, _ = chat.turn(params)                         # an ordinary turn: answered, cut
        same.append(t_same)
        cut = chat.messages[-1].content
        t_on, more, last = first_token(engine, chat.messages, params)
        going_on.append(t_on)
        cached.append((last.prompt_cached, last.prompt_tokens))
        fresh = LlamaCppEngine(**options)
        fresh.load(model)
        t_cold, more_cold, _ = first_token(fresh, chat.messages, params)
        fresh.close()
        cold.append(t_cold)
        assert more_cold == more, "a continuation from the cache must equal one read afresh"
        chat.messages[-1] = ChatMessage("assistant", cut + more)         # the next round asks again
    engine.close()
    m_same, m_on, m_cold = (statistics.median(v) for v in (same, going_on, cold))
    print(f"first token, medians of {args.rounds}: same-mix turn {m_same:.2f} s; Continue {m_on:.2f} s "
          f"({m_on / m_same:.2f}× the turn; {cached[-1][0]:,} of {cached[-1][1]:,} prompt tokens from the cache); "
          f"the continuation read afresh {m_cold:.2f} s ({m_cold / m_on:.0f}× Continue)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
