"""Benchmark switching adapter mixes at conversation scale: per-mix KV snapshots, pre-warm, and
`loradeck serve`'s mix-aware prefix reuse.

On a ~750M-parameter f16 Llama (random weights, real 32k SentencePiece vocabulary; bench_engine's
files at --dim 2048 --layers 12 --ff 5632 --heads 16) with rank-16 LoRAs on every linear layer, a
~2k-token conversation, greedy, 2 threads, every figure from this one run, medians over rounds.
Each scenario runs on its own engine (one model file, mapped once) and the rounds interleave the
engines, so a busy machine slows every scenario alike:

    same mix            a new turn under the mix of the turn before: the baseline
    strength change     a strength moved, the user pauses while the engine pre-warms (re-reads the
                        conversation under the new mix), then sends
    alternating A/B     each turn under the other of two mixes, sent as soon as the answer before
                        ended and the app's after-answer step (pre-warm of the current mix, which
                        keeps its snapshot; timed and shown apart) was done
    alternating, paced  the same, but the user reads each answer first: the app's after-answer step
                        also brings the other mix up to date (as the desktop app does)
    no snapshots        one strength change with the store off and no pre-warm (what every change
                        cost before: the whole conversation is read again)
    serve               two clients alternating two mixes over one ~1k-token system prompt, against
                        one client with one mix on a second server (first-token time at the client)
    serve, one chat     then, on a server of its own, one client alternating two mixes over one
                        conversation, sending once the server has read ahead (/health) or the instant
                        an answer ends, against a conversation kept on one mix
    decode tokens/s     an engine with snapshots and pre-warm against one without, same turns
    peak RSS            in a separate process: one engine (weights loaded, not mapped), its whole KV
                        buffer touched first, then strength changes until the store has evicted;
                        peak RSS above that baseline

First-token time is the wall time from `generate()` (or the HTTP request) to the first token.

    python bench/bench_switch.py [--threads 2] [--rounds 5] [--reply 16] [--conversation 2000] [--serve-only]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
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
    import bench_engine as be
    import gguf
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


class Chat:
    """One conversation on one engine: ~`target` tokens to start with, ~40-token questions."""

    def __init__(self, engine, target: int, seed: int):
        from adapters_backend.engines.base import ChatMessage
        self.engine, self.rng = engine, np.random.default_rng(seed)
        self.messages = [ChatMessage("system", words(self.rng, 100))]
        while len(engine.prompt_tokens(self.messages)) < target:
            self.messages += [ChatMessage("user", words(self.rng, 30)), ChatMessage("assistant", words(self.rng, 50))]

    def turn(self, params, after_answer: bool = True):
        """Ask; returns (first-token seconds, last chunk, seconds of the app's after-answer step)."""
        from adapters_backend.engines.base import ChatMessage
        self.messages.append(ChatMessage("user", words(self.rng, 30)))
        t0 = time.perf_counter()
        first, parts, last = None, [], None
        for last in self.engine.generate(self.messages, params):
            first = first if first is not None else time.perf_counter() - t0
            parts.append(last.text)
        self.messages.append(ChatMessage("assistant", "".join(parts)))
        t0 = time.perf_counter()
        if after_answer:
            self.engine.prewarm(self.messages)     # what the app does after each answer
        return first, last, time.perf_counter() - t0

    def prewarm(self, min_reuse: float = 0.0) -> float:
        t0 = time.perf_counter()
        self.engine.prewarm(self.messages, min_reuse=min_reuse)
        return time.perf_counter() - t0


def rss() -> tuple[int, int]:
    """(current, peak) resident set size in bytes (Linux /proc)."""
    got = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                got[line.split(":")[0]] = int(line.split()[1]) * 1024
    return got["VmRSS"], got["VmHWM"]


def med(values) -> float:
    return statistics.median(values)


def engine_part(args, model, loras):
    from adapters_backend.engines.base import ActiveAdapter, SamplingParams
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine

    opts = dict(n_ctx=args.n_ctx, n_threads=args.threads, n_threads_batch=args.threads)
    params = SamplingParams(max_tokens=args.reply, temperature=0.0, repeat_penalty=1.0)
    engines = {}
    for name, budget in (("same", 0), ("change", None), ("alt", None), ("paced", None)):
        engines[name] = LlamaCppEngine(**opts, kv_snapshot_budget=budget)
        info = engines[name].load(model)
    print(f"model: {info['n_params'] / 1e6:.0f}M parameters, f16; adapters: rank {args.rank} on all linears; "
          f"{args.threads} threads; KV {info['kv_bytes_per_token'] / 1024:.0f} KiB/token; n_ctx {args.n_ctx}; "
          f"snapshot budget {engines['change'].kv_stats().budget / 2**20:.0f} MiB", flush=True)
    a = [ActiveAdapter(loras[0], 0.8)]
    b = [ActiveAdapter(loras[0], 0.5), ActiveAdapter(loras[1], 0.6)]
    chats = {name: Chat(e, args.conversation, seed=1) for name, e in engines.items()}
    print(f"conversation: {len(engines['same'].prompt_tokens(chats['same'].messages))} tokens, replies of "
          f"{args.reply} tokens, questions of ~40 tokens", flush=True)
    t0 = time.perf_counter()
    for name, mixes in (("same", [a]), ("change", [a]), ("alt", [b, a]), ("paced", [b, a])):
        for mix in mixes:                              # every mix reads the conversation once first
            engines[name].set_adapters(mix)
            chats[name].prewarm()
    print(f"first reads of the conversation: {time.perf_counter() - t0:.0f} s for six", flush=True)

    same, change, reread, alt, after, paced, paced_after = [], [], [], [], [], [], []
    same_new, alt_new = [], []                   # prompt tokens each had to read (not cached)
    strength = 0.8
    engines["same"].set_adapters(a)
    for r in range(args.rounds):
        ttft, last_s, _t = chats["same"].turn(params)                      # same mix
        same.append(ttft)
        same_new.append(last_s.prompt_tokens - last_s.prompt_cached)
        strength += 0.05                                                   # a strength change, a pause
        engines["change"].set_adapters([ActiveAdapter(loras[0], strength)])
        reread.append(chats["change"].prewarm())
        ttft, last_c, _t = chats["change"].turn(params)
        change.append(ttft)
        for mix in (b, a):                                                 # alternating, no pause
            engines["alt"].set_adapters(mix)
            ttft, last_a, t_after = chats["alt"].turn(params)
            alt.append(ttft)
            alt_new.append(last_a.prompt_tokens - last_a.prompt_cached)
            after.append(t_after)
        for mix, other in ((b, a), (a, b)):                                # alternating, reading first
            engines["paced"].set_adapters(mix)
            ttft, last_p, t_current = chats["paced"].turn(params)
            paced.append(ttft)
            t0 = time.perf_counter()
            engines["paced"].set_adapters(other)                           # the app's background step
            chats["paced"].prewarm(min_reuse=0.5)
            paced_after.append(t_current + time.perf_counter() - t0)
        ttft, last_s, _t = chats["same"].turn(params)
        same.append(ttft)
        same_new.append(last_s.prompt_tokens - last_s.prompt_cached)
        print(f"round {r + 1}/{args.rounds}: same mix {same[-2]:.2f}/{same[-1]:.2f} s; strength change after the "
              f"pause {change[-1]:.2f} s (pre-warm {reread[-1]:.1f} s, {last_c.prompt_cached}/{last_c.prompt_tokens} "
              f"cached); alternating {alt[-2]:.2f}/{alt[-1]:.2f} s ({last_a.prompt_cached}/{last_a.prompt_tokens} "
              f"cached, after-answer step {after[-1]:.2f} s); paced {paced[-2]:.2f}/{paced[-1]:.2f} s "
              f"({last_p.prompt_cached}/{last_p.prompt_tokens} cached)", flush=True)
    stats = engines["change"].kv_stats()
    # No snapshots, no pre-warm: one strength change reads the whole conversation again.
    e = engines["same"]
    e.set_adapters([ActiveAdapter(loras[0], 0.33)])
    none_ttft, last, _t = chats["same"].turn(params, after_answer=False)
    print(f"no snapshots: {none_ttft:.1f} s for a {last.prompt_tokens}-token prompt", flush=True)
    out = {"same": med(same), "change": med(change), "reread": med(reread), "alt": med(alt), "after": med(after),
           "alt_with_after": med([x + y for x, y in zip(alt, after)]), "paced": med(paced), "paced_after": med(paced_after), "none": none_ttft,
           "same_new": med(same_new), "alt_new": med(alt_new),
           "stats": stats}

    # Decode speed: the snapshot engine (pre-warm after each answer) against the plain one, same turns.
    decode = SamplingParams(max_tokens=args.decode_tokens, temperature=0.0, repeat_penalty=1.0)
    pair = {}
    for name, eng in (("store", engines["change"]), ("plain", engines["same"])):
        eng.set_adapters(a)
        pair[name] = (eng, [], Chat(eng, args.conversation // 2, seed=2))
        pair[name][2].prewarm()
    for r in range(args.rounds):
        for name in (("store", "plain") if r % 2 == 0 else ("plain", "store")):
            eng, tps, chat = pair[name]
            _ttft, last, _t = chat.turn(decode, after_answer=name == "store")
            tps.append(last.tokens_per_second)
    out["tps_store"], out["tps_plain"] = med(pair["store"][1]), med(pair["plain"][1])
    for eng in engines.values():
        eng.close()
    return out


def rss_part(args, model, loras) -> dict:
    """In this process alone: one engine, whole KV buffer touched, then strength changes with pre-warm
    until the store has evicted; peak RSS above the baseline."""
    from adapters_backend.engines.base import ActiveAdapter
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine

    # Weights read into memory (no mmap): file pages the kernel may drop under memory pressure would
    # make RSS move for reasons that have nothing to do with the store.
    e = LlamaCppEngine(n_ctx=args.n_ctx, n_threads=args.threads, n_threads_batch=args.threads,
                       kv_snapshot_budget=args.rss_budget_mib * 2**20, use_mmap=False)
    e.load(model)
    chat = Chat(e, args.conversation, seed=4)
    e.set_kv_budget(0)
    e.next_token_logits([1] + [300 + i % 20000 for i in range(args.n_ctx - 8)])   # every KV page touched
    e.forget_kv()
    e.set_kv_budget(args.rss_budget_mib * 2**20)
    base = rss()[0]
    with open("/proc/self/clear_refs", "w") as f:      # "5": reset the peak RSS to the current RSS
        f.write("5")
    strength = 0.5
    while e.kv_stats().evicted < 2:
        strength += 0.001                  # a new mix each time (a tiny model needs many to fill the store)
        e.set_adapters([ActiveAdapter(loras[0], strength)])
        chat.prewarm()
    stats = e.kv_stats()
    return {"peak": rss()[1] - base, "budget": stats.budget, "entries": stats.entries, "nbytes": stats.nbytes,
            "evicted": stats.evicted}


def serve_part(args, model, loras):
    import httpx2 as httpx
    import openai

    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    from adapters_backend.serve import create_app
    from adapters_backend.serve.resolver import AdapterResolver
    from adapters_backend.serve.runner import BackgroundServer

    urls = []

    def server():
        app = create_app(model, resolver=AdapterResolver(None, include_demo=False),
                         engine_factory=lambda: LlamaCppEngine(n_ctx=args.n_ctx, n_threads=args.threads,
                                                               n_threads_batch=args.threads))
        s = BackgroundServer(app)
        url = s.start("127.0.0.1", 0, timeout=600)
        urls.append(url)
        return s, openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)

    def settle(*skip):
        """Wait until the servers (but `skip`) have read ahead after their last answer: two servers
        share this machine's cores, and one's reading must not slow the other's request."""
        for url in urls:
            while url not in skip:
                h = httpx.get(f"{url}/health", timeout=60).json()
                if not (h["busy"] or h["reading_ahead"] or h["queued"]):
                    break
                time.sleep(0.01)

    rng = np.random.default_rng(3)
    system = {"role": "system", "content": words(rng, 700)}
    mixes = {"A": [{"name": str(loras[0]), "strength": 0.8}],
             "B": [{"name": str(loras[0]), "strength": 0.5}, {"name": str(loras[1]), "strength": 0.6}]}

    def request(client, history: list, mix: str, at_once: str | None = None):
        settle(at_once)
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

    def cached(usage) -> str:
        got = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else None
        return f"{got}/{usage.prompt_tokens}"

    (one, c1), (two, c2) = server(), server()
    try:
        h0, h1, h2 = [], [], []
        request(c1, h0, "A")                           # each reads the system prompt once
        request(c2, h1, "A")
        request(c2, h2, "B")
        single, alternating = [], []
        for r in range(args.rounds):
            single.append(request(c1, h0, "A")[0])
            t1, _u = request(c2, h1, "A")
            single.append(request(c1, h0, "A")[0])
            t2, usage = request(c2, h2, "B")
            alternating += [t1, t2]
            print(f"serve round {r + 1}/{args.rounds}: one client, one mix {single[-2]:.2f}/{single[-1]:.2f} s; "
                  f"two clients, two mixes {t1:.2f}/{t2:.2f} s ({cached(usage)} prompt tokens cached)", flush=True)
    finally:
        one.stop()
        two.stop()
    # Then, on a server of its own: one client alternating two mixes over one conversation, sending once
    # the server has read ahead (paced) or the instant an answer ends, against one keeping one mix.
    urls.clear()
    three, c3 = server()
    try:
        h3, h4, h5 = [], [], []
        for h in (h3, h4):                             # asked under both mixes once
            request(c3, h, "A")
            request(c3, h, "B")
        request(c3, h5, "A")
        same, paced, at_once = [], [], []
        for r in range(args.rounds):
            same.append(request(c3, h5, "A")[0])
            p1, _u = request(c3, h3, "A")
            p2, pu = request(c3, h3, "B")
            paced += [p1, p2]
            request(c3, h4, "A")
            a2, au = request(c3, h4, "B", at_once=urls[0])
            at_once.append(a2)
            print(f"serve round {r + 1}/{args.rounds}: one conversation, one mix {same[-1]:.2f} s; alternating, "
                  f"paced {p1:.2f}/{p2:.2f} s ({cached(pu)} cached), the other mix sent at once {a2:.2f} s "
                  f"({cached(au)})", flush=True)
    finally:
        three.stop()
    return {"serve_single": statistics.mean(single), "serve_two": statistics.mean(alternating),
            "serve_same": statistics.mean(same), "serve_paced": statistics.mean(paced),
            "serve_at_once": statistics.mean(at_once)}


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
    ap.add_argument("--rss-budget-mib", type=int, default=512, help="snapshot budget of the peak-RSS check")
    ap.add_argument("--skip-serve", action="store_true")
    ap.add_argument("--serve-only", action="store_true", help="only the `loradeck serve` scenarios")
    ap.add_argument("--rss-only", action="store_true", help=argparse.SUPPRESS)    # the child process
    ap.add_argument("--folder", type=Path, default=None, help="where the model files go (default: cache)")
    args = ap.parse_args()

    import bench_engine as be
    if not be.VOCAB.exists():
        print(f"missing {be.VOCAB}; run `python3 dev.py test` once to fetch llama.cpp's sources", file=sys.stderr)
        return 2
    from adapters_backend.paths import cache_dir
    folder = args.folder or cache_dir() / "bench-switch"
    model, loras = make_files(folder, args.dim, args.layers, args.ff, args.heads, args.rank, args.n_ctx)
    if args.rss_only:
        print("RSS " + json.dumps(rss_part(args, model, loras)), flush=True)
        return 0
    if args.serve_only:
        res = serve_part(args, model, loras)
        print(f"\nserve, means of {args.rounds} rounds: two clients, two mixes {res['serve_two']:.2f} s "
              f"({res['serve_two'] / res['serve_single']:.2f}× one client, one mix: {res['serve_single']:.2f} s); "
              f"one conversation alternating two mixes, sent once the server read ahead {res['serve_paced']:.2f} s "
              f"({res['serve_paced'] / res['serve_same']:.2f}× one mix: {res['serve_same']:.2f} s), the other mix "
              f"sent at once {res['serve_at_once']:.2f} s ({res['serve_at_once'] / res['serve_same']:.2f}×)")
        return 0
    res = engine_part(args, model, loras)
    if not args.skip_serve:
        res.update(serve_part(args, model, loras))
    child = subprocess.run([sys.executable, __file__, "--rss-only", *sys.argv[1:], "--folder", str(folder)],
                           capture_output=True, text=True, check=True)
    res["rss"] = json.loads(next(line[4:] for line in child.stdout.splitlines() if line.startswith("RSS ")))

    def verdict(name: str, ratio: float) -> str:
        return f"goal ≤ {GOALS[name]:g}: {'met' if ratio <= GOALS[name] else 'NOT met'}"

    same = res["same"]
    print(f"\nfirst-token time, medians of {args.rounds} rounds (same mix: {same:.2f} s):")
    print(f"  strength change after a pause   {res['change']:6.2f} s  {res['change'] / same:6.2f}× same mix   "
          + verdict("strength change", res["change"] / same) + f"  (pre-warm took {res['reread']:.1f} s)")
    print(f"  alternating A/B, no pause       {res['alt']:6.2f} s  {res['alt'] / same:6.2f}× same mix   "
          + verdict("alternating A/B", res["alt"] / same))
    print(f"    (+ the after-answer step, {res['after']:.2f} s: {res['alt_with_after'] / same:.2f}× same mix)")
    # Nothing may run during an answer, so the other mix reads the turn it did not see after the send:
    # its prompt is longer, and at the same-mix cost per token that alone sets a floor.
    print(f"    tokens read after the send: {res['alt_new']:.0f} against {res['same_new']:.0f} for the same mix; at "
          f"the same-mix cost per token that is {res['alt_new'] / res['same_new']:.2f}× same mix, the floor "
          "without reading during the answer")
    print(f"  alternating A/B, reading first  {res['paced']:6.2f} s  {res['paced'] / same:6.2f}× same mix"
          f"   (sent once the app's whole after-answer step, both mixes, {res['paced_after']:.2f} s, is done)")
    print(f"  no snapshots (as before)        {res['none']:6.2f} s  {res['none'] / same:6.2f}× same mix")
    if "serve_two" in res:
        ratio = res["serve_two"] / res["serve_single"]
        print(f"  serve: two clients, two mixes   {res['serve_two']:6.2f} s  {ratio:6.2f}× one client, one mix "
              f"({res['serve_single']:.2f} s), means   " + verdict("serve", ratio))
        print(f"  serve: one conversation alternating two mixes, sent once the server read ahead "
              f"{res['serve_paced']:.2f} s ({res['serve_paced'] / res['serve_same']:.2f}× one mix: "
              f"{res['serve_same']:.2f} s); the other mix sent the instant the answer ended "
              f"{res['serve_at_once']:.2f} s ({res['serve_at_once'] / res['serve_same']:.2f}×)")
    s = res["stats"]
    print(f"strength-change engine's store at the end: {s.entries} snapshots, {s.nbytes / 2**20:.0f} of "
          f"{s.budget / 2**20:.0f} MiB, {s.tokens} tokens, {s.hits} restores, {s.evicted} evicted, {s.skipped} skipped")
    r = res["rss"]
    print(f"peak RSS above the model: {r['peak'] / 2**20:.0f} MiB with a budget of {r['budget'] / 2**20:.0f} MiB "
          f"({r['peak'] / r['budget']:.2f}× budget; goal ≤ 1.10: {'met' if r['peak'] <= 1.1 * r['budget'] else 'NOT met'}); "
          f"store then: {r['entries']} snapshots, {r['nbytes'] / 2**20:.0f} MiB, {r['evicted']} evicted")
    ratio = res["tps_store"] / res["tps_plain"]
    print(f"decode tokens/s: with snapshots and pre-warm {res['tps_store']:.2f}, without {res['tps_plain']:.2f}: "
          f"{ratio:.3f} (goal ≥ 0.98: {'met' if ratio >= 0.98 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
