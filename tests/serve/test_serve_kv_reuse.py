"""`loradeck serve` with clients on different mixes: a request reuses the longest prompt prefix held
under its own mix (usage.prompt_tokens_details.cached_tokens says how much), and every answer, also
under interleaved concurrent requests, is exactly what a fresh engine gives for that mix."""
from __future__ import annotations

import threading

import pytest
from serve_testlib import GREEDY, start_server

from adapters_backend import demo

SYSTEM = " ".join(["You answer questions about harbours, lanterns and the weather at sea."] * 12)
MIXES = {"shout": [{"name": "shout", "strength": 0.9}],
         "pirate+reverse": [{"name": "pirate", "strength": 0.7}, {"name": "reverse", "strength": -0.4}],
         "base": []}


@pytest.fixture(scope="module")
def kv_served(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve-kv")
    s = start_server(library_root=d / "library", presets_path=d / "mix_presets.json", n_ctx=1024)
    yield s
    s.server.stop()


@pytest.fixture(scope="module")
def fresh():
    """fresh(mix name, messages) -> the reply of an engine that has run nothing else (no snapshots)."""
    from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine, run_to_text

    engine = LlamaCppEngine(n_ctx=1024, n_threads=1, kv_snapshot_budget=0)
    engine.load(demo.demo_model_path())
    params = SamplingParams(max_tokens=GREEDY["max_tokens"], temperature=0.0, seed=GREEDY["seed"])

    def reply(mix: str, messages) -> str:
        engine.set_adapters([ActiveAdapter(demo.demo_lora_gguf(a["name"]), a["strength"]) for a in MIXES[mix]])
        engine.forget_kv()
        return run_to_text(engine, [ChatMessage(m["role"], m["content"]) for m in messages], params)

    yield reply
    engine.close()


def chat(client, mix: str, messages):
    r = client.chat.completions.create(model="tiny-deck-demo", messages=messages, extra_body={"adapters": MIXES[mix]},
                                       **GREEDY)
    return r.choices[0].message.content, r.usage


def test_clients_alternating_mixes_reuse_only_their_own_mixes_prefix(kv_served, fresh):
    questions = ["Where is the lantern kept?", "Who lights it?", "When does the storm come?"]
    histories = {"shout": [{"role": "system", "content": SYSTEM}],
                 "pirate+reverse": [{"role": "system", "content": SYSTEM}]}
    with kv_served.client() as client:
        for turn, question in enumerate(questions):
            for mix, history in histories.items():          # two clients, taking turns
                history.append({"role": "user", "content": question})
                text, usage = chat(client, mix, history)
                assert text == fresh(mix, history)
                cached = usage.prompt_tokens_details.cached_tokens
                if turn == 0:
                    assert cached == 0                      # nothing of this mix was there yet
                else:                                       # its own earlier turn: only the new tokens
                    assert cached >= usage.prompt_tokens - 30, (cached, usage.prompt_tokens)
                history.append({"role": "assistant", "content": text})
        # A third mix over the same system prompt shares nothing with the other two.
        text, usage = chat(client, "base", histories["shout"][:2])
        assert usage.prompt_tokens_details.cached_tokens == 0
        assert text == fresh("base", histories["shout"][:2])


def test_interleaved_concurrent_requests_answer_as_fresh_engines(kv_served, fresh):
    jobs = [(mix, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"Question {i}: and then?"}])
            for i in range(3) for mix in MIXES]
    results: dict[int, str] = {}
    errors = []

    def run(i, mix, messages):
        try:
            with kv_served.client() as client:
                results[i] = chat(client, mix, messages)[0]
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, mix, m)) for i, (mix, m) in enumerate(jobs * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and len(results) == 2 * len(jobs)
    for i, (mix, messages) in enumerate(jobs * 2):
        assert results[i] == fresh(mix, messages), (i, mix)
