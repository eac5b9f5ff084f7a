"""Benchmark switching adapter mixes at conversation scale: per-mix KV snapshots, pre-warm, and
`loradeck serve`'s mix-aware prefix reuse.

On a ~750M-parameter f16 Llama (random weights, real 32k SentencePiece vocabulary; bench_engine's
files at --dim 2048 --layers 12 --ff 5632 --heads 16) with rank-16 LoRAs on every linear layer, a
~2k-token conversation, greedy, 2 threads, every figure from this one run, medians over rounds:

    same mix            a new turn under the mix of the turn before: the baseline
    strength change     a strength moved, the user pauses while the engine pre-warms (re-reads the
                        conversation under the new mix), then sends
    alternating A/B     each turn under the other of two mixes, sent as soon as the answer before ended
                        and the app's after-answer step (pre-warm of the current mix, which stores
                        its snapshot; timed and shown separately) was done
    no snapshots        one strength change with the store off and no pre-warm (what every change
                        cost before: the whole conversation is read again)
    serve               two clients alternating two mixes over one ~1k-token system prompt, against
                        one client with one mix (first-token time at the client, streaming)
    peak RSS            above the model (its whole KV buffer touched first) while the store fills
    decode tokens/s     an engine with snapshots and pre-warm against one without, same turns

First-token time is the wall time from `generate()` (or the HTTP request) to the first token.

    python bench/bench_switch.py [--threads 2] [--rounds 5] [--reply 16] [--conversation 2000]
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

GOALS = {"strength change": 1.5, "alternating A/B": 1.5, "serve": 2.0}
WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one had by "
         "word but not what all were we when your can said there use an each which she do how their if will up "
         "other about out many then them these so some her would make like him into time has look two more write "
         "go see number no way could people my than first water been call who oil its now find long down day did "
         "get come made may part harbour lantern keeper storm rope window river stone garden winter letter").split()


def words(rng, n: int) -> str:
    return " ".join(rng.choice(WORDS, n)).capitalize() + "."


def make_files(folder: Path, dim: int, layers: int, ff: int, heads: int, rank: int, n_ctx: int):
    import gguf

    import bench_engine as be
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"d{dim}-l{layers}-f{ff}-h{heads}-c{n_ctx}"
    model = folder / f"base-{tag}.gguf"
    loras = [folder / f"lora{i}-{tag}-r{rank}.gguf" for i in range(2)]
    if not model.exists():
        print("writing the benchmark model …", flush=True)
        vocab = len(gguf.GGUFReader(be.VOCAB).fields["tokenizer.ggml.tokens"].data)
        be.write_model(model, be.base_weights(dim, layers, ff, vocab), dim, layers, ff, heads, context_length=n_ctx)
    for i, path in enumerate(loras):
        if not path.exists():
            be.write_lora(path, be.make_lora(dim, layers, ff, rank, seed=20 + i), np.float32)
    return model, loras


def conversation(engine, target: int, seed: int):
    from adapters_backend.engines.base import ChatMessage
    rng = np.random.default_rng(seed)
    chat = [ChatMessage("system", words(rng, 100))]
    while len(engine.prompt_tokens(chat)) < target:
        chat += [ChatMessage("user", words(rng, 30)), ChatMessage("assistant", words(rng, 50))]
    return chat, rng


def turn(engine, chat, rng, params):
    """Ask a new ~40-token question; returns (first-token seconds, last chunk) and extends `chat`."""
    from adapters_backend.engines.base import ChatMessage
    chat.append(ChatMessage("user", words(rng, 30)))
    t0 = time.perf_counter()
    first, parts, last = None, [], None
    for last in engine.generate(chat, params):
        first = first if first is not None else time.perf_counter() - t0
        parts.append(last.text)
    chat.append(ChatMessage("assistant", "".join(parts)))
    return first, last


def rss() -> tuple[int, int]:
    """(current, peak) resident set size in bytes (Linux /proc)."""
    got = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                got[line.split(":")[0]] = int(line.split()[1]) * 1024
    return got["VmRSS"], got["VmHWM"]


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:     # "5": reset the peak RSS to the current RSS
        f.write("5")


def med(values) -> float:
    return statistics.median(values)


def engine_part(args, model, loras):
    from adapters_backend.engines.base import ActiveAdapter, SamplingParams
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine

    opts = dict(n_ctx=args.n_ctx, n_threads=args.threads, n_threads_batch=args.threads)
    params = SamplingParams(max_tokens=args.reply, temperature=0.0, repeat_penalty=1.0)
    e = LlamaCppEngine(**opts)
    info = e.load(model)
    print(f"model: {info['n_params'] / 1e6:.0f}M parameters, f16; adapters: rank {args.rank} on all linears; "
          f"{args.threads} threads; KV {info['kv_bytes_per_token'] / 1024:.0f} KiB/token; n_ctx {args.n_ctx}",
          flush=True)
    # Touch the whole KV buffer and the compute buffers once, so the RSS baseline holds everything the
    # model will ever use; only the snapshot store grows beyond it.
    e.set_kv_budget(0)
    longest = min(args.n_ctx - 8, args.conversation + 100 * (4 * args.rounds + 4))
    e.next_token_logits([1] + [300 + i % 20000 for i in range(longest)])
    e.forget_kv()
    e.set_kv_budget(None)
    budget = e.kv_stats().budget
    base_rss = rss()[0]
    reset_peak_rss()

    a = [ActiveAdapter(loras[0], 0.8)]
    b = [ActiveAdapter(loras[0], 0.5), ActiveAdapter(loras[1], 0.6)]
    chat, rng = conversation(e, args.conversation, seed=1)
    print(f"conversation: {len(e.prompt_tokens(chat))} tokens, replies of {args.reply} tokens, "
          f"questions of ~40 tokens; snapshot budget {budget / 2**20:.0f} MiB", flush=True)
    e.set_adapters(a)
    t0 = time.perf_counter()
    e.prewarm(chat)
    print(f"first read of the conversation: {time.perf_counter() - t0:.1f} s", flush=True)

    same, change, reread, alt, after = [], [], [], [], []
    strength = 0.8
    for r in range(args.rounds):
        e.set_adapters(a)                              # (a) same mix: the previous turn's
        ttft, _ = turn(e, chat, rng, params)
        same.append(ttft)
        e.prewarm(chat)                                # the app does this after each answer
        strength += 0.05                               # (b) a strength change, then a pause
        a = [ActiveAdapter(loras[0], strength)]
        e.set_adapters(a)
        t0 = time.perf_counter()
        e.prewarm(chat)
        reread.append(time.perf_counter() - t0)
        ttft, last = turn(e, chat, rng, params)
        change.append(ttft)
        e.prewarm(chat)
        print(f"round {r + 1}/{args.rounds}: same mix {same[-1]:.2f} s, strength change after the pause "
              f"{change[-1]:.2f} s (pre-warm {reread[-1]:.1f} s, {last.prompt_cached}/{last.prompt_tokens} "
              f"prompt tokens cached)", flush=True)
    # (c) alternating A/B, no pause: each mix is read once first.
    for mix in (b, a):
        e.set_adapters(mix)
        turn(e, chat, rng, params)
        e.prewarm(chat)
    for r in range(args.rounds):
        for mix in (b, a):
            e.set_adapters(mix)
            ttft, last = turn(e, chat, rng, params)
            alt.append(ttft)
            t0 = time.perf_counter()
            e.prewarm(chat)                            # the app's step after each answer
            after.append(time.perf_counter() - t0)
        print(f"alternating round {r + 1}/{args.rounds}: {alt[-2]:.2f} s, {alt[-1]:.2f} s "
              f"({last.prompt_cached}/{last.prompt_tokens} cached; after-answer step {after[-1]:.2f} s)",
              flush=True)
    stats = e.kv_stats()
    peak = rss()[1] - base_rss
    # (d) no snapshots, no pre-warm: one strength change reads the whole conversation again.
    e.set_kv_budget(0)
    e.forget_kv()
    e.set_adapters([ActiveAdapter(loras[0], strength + 0.05)])
    none_ttft, last = turn(e, chat, rng, params)
    print(f"no snapshots: {none_ttft:.1f} s for a {last.prompt_tokens}-token prompt", flush=True)
    e.set_kv_budget(None)
    out = {"same": med(same), "change": med(change), "reread": med(reread), "alt": med(alt), "after": med(after),
           "alt_with_after": med([x + y for x, y in zip(alt, after)]), "none": none_ttft,
           "peak": peak, "budget": budget, "stats": stats}

    # (e) decode speed: this engine (snapshots, pre-warm after each answer) against a plain one.
    plain = LlamaCppEngine(**opts, kv_snapshot_budget=0)
    plain.load(model)
    chats = {id(e): conversation(e, args.conversation // 2, seed=2), id(plain): conversation(plain, args.conversation // 2, seed=2)}
    tps = {id(e): [], id(plain): []}
    decode = SamplingParams(max_tokens=args.decode_tokens, temperature=0.0, repeat_penalty=1.0)
    for engine in (e, plain):
        engine.set_adapters(a)
        engine.prewarm(chats[id(engine)][0])
    for r in range(args.rounds):
        for engine in ((e, plain) if r % 2 == 0 else (plain, e)):
            c, crng = chats[id(engine)]
            _ttft, last = turn(engine, c, crng, decode)
            tps[id(engine)].append(last.tokens_per_second)
            if engine is e:
                engine.prewarm(c)
    out["tps_store"], out["tps_plain"] = med(tps[id(e)]), med(tps[id(plain)])
    plain.close()
    e.close()
    return out


def serve_part(args, model, loras):
    import openai

    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    from adapters_backend.serve import create_app
    from adapters_backend.serve.resolver import AdapterResolver
    from adapters_backend.serve.runner import BackgroundServer

    app = create_app(model, resolver=AdapterResolver(None, include_demo=False),
                     engine_factory=lambda: LlamaCppEngine(n_ctx=args.n_ctx, n_threads=args.threads,
                                                           n_threads_batch=args.threads))
    server = BackgroundServer(app)
    url = server.start("127.0.0.1", 0, timeout=300)
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
    rng = np.random.default_rng(3)
    system = {"role": "system", "content": words(rng, 700)}
    mixes = {"A": [{"name": str(loras[0]), "strength": 0.8}],
             "B": [{"name": str(loras[0]), "strength": 0.5}, {"name": str(loras[1]), "strength": 0.6}]}

    def request(history: list, mix: str):
        history.append({"role": "user", "content": words(rng, 30)})
        t0 = time.perf_counter()
        first, parts, usage = None, [], None
        stream = client.chat.completions.create(model=Path(model).stem, messages=[system, *history], stream=True,
                                                max_tokens=args.reply, temperature=0.0,
                                                stream_options={"include_usage": True},
                                                extra_body={"adapters": mixes[mix]})
        for chunk in stream:
            first = first if first is not None else time.perf_counter() - t0
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
        history.append({"role": "assistant", "content": "".join(parts)})
        return first, usage

    try:
        single, h0 = [], []
        request(h0, "A")                               # reads the system prompt once
        for _ in range(args.rounds):
            single.append(request(h0, "A")[0])
        two, h1, h2 = [], [], []
        request(h1, "A")
        request(h2, "B")                               # each mix reads the system prompt once
        for r in range(args.rounds):
            t1, _u = request(h1, "A")
            t2, usage = request(h2, "B")
            two += [t1, t2]
            cached = (getattr(usage, "prompt_tokens_details", None) or {})
            cached = getattr(cached, "cached_tokens", None) if not isinstance(cached, dict) else cached.get("cached_tokens")
            print(f"serve round {r + 1}/{args.rounds}: one client {single[r]:.2f} s; two clients, two mixes "
                  f"{t1:.2f} s, {t2:.2f} s ({cached}/{usage.prompt_tokens} prompt tokens cached)", flush=True)
    finally:
        server.stop()
    return {"serve_single": statistics.mean(single), "serve_two": statistics.mean(two)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reply", type=int, default=16, help="tokens per answer")
    ap.add_argument("--decode-tokens", type=int, default=64)
    ap.add_argument("--conversation", type=int, default=2000, help="tokens of conversation before the turns")
    ap.add_argument("--n-ctx", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--ff", type=int, default=5632)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--skip-serve", action="store_true")
    ap.add_argument("--folder", type=Path, default=None, help="where the model files go (default: cache)")
    args = ap.parse_args()

    import bench_engine as be
    if not be.VOCAB.exists():
        print(f"missing {be.VOCAB}; run `python3 dev.py test` once to fetch llama.cpp's sources", file=sys.stderr)
        return 2
    from adapters_backend.paths import cache_dir
    model, loras = make_files(args.folder or cache_dir() / "bench-switch", args.dim, args.layers, args.ff,
                              args.heads, args.rank, args.n_ctx)
    res = engine_part(args, model, loras)
    if not args.skip_serve:
        res.update(serve_part(args, model, loras))

    def verdict(name: str, ratio: float) -> str:
        return f"goal ≤ {GOALS[name]:g}: {'met' if ratio <= GOALS[name] else 'NOT met'}"

    same = res["same"]
    print(f"\nfirst-token time, medians of {args.rounds} rounds (same mix: {same:.2f} s):")
    print(f"  strength change after a pause   {res['change']:6.2f} s  {res['change'] / same:6.2f}× same mix   "
          + verdict("strength change", res["change"] / same) + f"  (pre-warm took {res['reread']:.1f} s)")
    print(f"  alternating A/B, no pause       {res['alt']:6.2f} s  {res['alt'] / same:6.2f}× same mix   "
          + verdict("alternating A/B", res["alt"] / same))
    print(f"    (+ the after-answer step, {res['after']:.2f} s: {res['alt_with_after'] / same:.2f}× same mix)")
    print(f"  no snapshots (as before)        {res['none']:6.2f} s  {res['none'] / same:6.2f}× same mix")
    if "serve_two" in res:
        ratio = res["serve_two"] / res["serve_single"]
        print(f"  serve: two clients, two mixes   {res['serve_two']:6.2f} s  {ratio:6.2f}× one client, one mix "
              f"({res['serve_single']:.2f} s), means   " + verdict("serve", ratio))
    s = res["stats"]
    print(f"\npeak RSS above the model: {res['peak'] / 2**20:.0f} MiB with a budget of {res['budget'] / 2**20:.0f} MiB "
          f"({res['peak'] / res['budget']:.2f}× budget; goal ≤ 1.10: {'met' if res['peak'] <= 1.1 * res['budget'] else 'NOT met'}); "
          f"store at the end: {s.entries} snapshots, {s.nbytes / 2**20:.0f} MiB, {s.tokens} tokens, "
          f"{s.hits} restores, {s.evicted} evicted, {s.skipped} skipped")
    ratio = res["tps_store"] / res["tps_plain"]
    print(f"decode tokens/s: with snapshots and pre-warm {res['tps_store']:.2f}, without {res['tps_plain']:.2f}: "
          f"{ratio:.3f} (goal ≥ 0.98: {'met' if ratio >= 0.98 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
