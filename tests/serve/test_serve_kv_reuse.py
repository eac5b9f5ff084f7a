"""`loradeck serve` with clients on different mixes: a request reuses the longest prompt prefix held
under its own mix (usage.prompt_tokens_details.cached_tokens says how much), and every answer, also
under interleaved concurrent requests, is exactly what a fresh engine gives for that mix."""
from __future__ import annotations

import threading

import pytest
from serve_testlib import GREEDY, start_server, wait_settled

from adapters_backend import demo

# ~130 tokens: the demo model was trained on 512-token contexts, so its context is 512 whatever is asked.
SYSTEM = " ".join(["You answer questions about harbours, lanterns and the weather at sea."] * 4)
MIXES = {"shout": [{"name": "shout", "strength": 0.9}],
         "pirate+reverse": [{"name": "pirate", "strength": 0.7}, {"name": "reverse", "strength": -0.4}],
         "base": []}


@pytest.fixture(scope="module")
def kv_served(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve-kv")
    s = start_server(library_root=d / "library", presets_path=d / "mix_presets.json", n_ctx=512)
    yield s
    s.server.stop()


@pytest.fixture(scope="module")
def fresh():
    """fresh(mix name, messages) -> the reply of an engine that has run nothing else (no snapshots)."""
    from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams, run_to_text
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine

    engine = LlamaCppEngine(n_ctx=512, n_threads=1, kv_snapshot_budget=0)
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


def test_one_conversation_alternating_two_mixes_reads_only_each_new_message(kv_served, fresh):
    """After an answer, while no request waits, the server reads the chat with its answer under the
    mix of the turn before: a client alternating mixes over one conversation at a reading pace pays
    only for each new message. Each answer is still a fresh engine's."""
    history = [{"role": "system", "content": SYSTEM}]
    questions = ["Where is the lantern kept?", "Who lights it?", "When does the storm come?", "What is a gale?",
                 "Is the harbour deep?", "Who keeps the ledger?"]
    with kv_served.client() as client:
        for turn, question in enumerate(questions):
            mix = ("shout", "pirate+reverse")[turn % 2]
            history.append({"role": "user", "content": question})
            text, usage = chat(client, mix, history)
            assert text == fresh(mix, history), turn
            if turn >= 2:                # the other mix was read up to the answer before: only the question
                new = usage.prompt_tokens - usage.prompt_tokens_details.cached_tokens
                assert new <= 24, (turn, new, usage.prompt_tokens)
            history.append({"role": "assistant", "content": text})
            wait_settled(kv_served.url)


def test_reading_ahead_is_only_for_a_conversation_that_alternates_mixes(tmp_path):
    """Two clients over one system prompt, each with its own mix, get nothing read ahead; a client that
    alternates mixes over its conversation gets it read under the mix of its turn before, after each
    answer (the real engine, noting what it is asked to read)."""
    import openai

    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    from adapters_backend.library import Library
    from adapters_backend.serve import create_app
    from adapters_backend.serve.resolver import AdapterResolver
    from adapters_backend.serve.runner import BackgroundServer

    reads = []

    class Recording(LlamaCppEngine):
        def prewarm(self, messages, ctx=None, min_reuse=0.0):
            reads.append((self._mix_for_record, len(messages)))
            return super().prewarm(messages, ctx, min_reuse)

        def set_adapters(self, adapters, ctx=None):
            self._mix_for_record = tuple(a.path for a in adapters)
            return super().set_adapters(adapters, ctx)

    resolver = AdapterResolver(Library(tmp_path / "lib"), presets_path=tmp_path / "p.json", allow_paths=True)
    app = create_app(None, resolver=resolver, bound_host="127.0.0.1",
                     engine_factory=lambda: Recording(n_ctx=512, n_threads=1))
    server = BackgroundServer(app)
    url = server.start("127.0.0.1", 0, timeout=120)
    paths = {mix: tuple(str(demo.demo_lora_gguf(a["name"])) for a in MIXES[mix]) for mix in MIXES}
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60)

        def ask(mix, history, question):
            history.append({"role": "user", "content": question})
            r = client.chat.completions.create(model="tiny-deck-demo", messages=history,
                                               extra_body={"adapters": MIXES[mix]}, **GREEDY)
            history.append({"role": "assistant", "content": r.choices[0].message.content})
            wait_settled(url)

        histories = {"shout": [{"role": "system", "content": SYSTEM}],
                     "pirate+reverse": [{"role": "system", "content": SYSTEM}]}
        for turn in range(3):
            for mix, history in histories.items():
                ask(mix, history, f"{mix} question {turn}?")
        assert reads == []
        one = [{"role": "system", "content": SYSTEM}]
        for turn in range(4):
            ask(("shout", "pirate+reverse")[turn % 2], one, f"alternating question {turn}?")
        # After turns 2, 3 and 4: the chat so far, under the mix of the turn before each.
        assert reads == [(paths["shout"], 5), (paths["pirate+reverse"], 7), (paths["shout"], 9)]
    finally:
        server.stop()
