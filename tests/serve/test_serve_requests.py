"""The server's other duties: /v1/adapters and adapters installed while it runs, 4xx errors that name
the problem, the API key, concurrent clients (queued, none lost) and cancelling on disconnect."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import openai
import pytest
from serve_testlib import GREEDY, QUESTION, ask, capital_fraction, http, random_model_server, start_server

from adapters_backend import demo

TESTS = Path(__file__).resolve().parents[1]


def test_adapters_listed_and_installs_usable_without_restart(served, client):
    status, listing = http(f"{served.url}/v1/adapters")
    assert status == 200 and listing["object"] == "list"
    assert [(a["name"], a["source"]) for a in listing["data"]] == [
        ("shout", "demo"), ("pirate", "demo"), ("reverse", "demo")]
    shout = ask(client, adapters=[{"name": "shout", "strength": 1.0}])
    with pytest.raises(openai.BadRequestError, match="my-shout"):
        ask(client, adapters=[{"name": "my-shout"}])
    entry = served.library.install(demo.demo_lora_gguf("shout"), name="my-shout")    # while it runs
    names = [a["name"] for a in http(f"{served.url}/v1/adapters")[1]["data"]]
    assert names[0] == "my-shout"
    assert ask(client, adapters=[{"name": "my-shout", "strength": 1.0}]) == shout
    assert ask(client, adapters=[{"name": entry.id, "strength": 1.0}]) == shout       # by library id too
    assert ask(client, content=f"<lora:my-shout:1>{QUESTION}") == shout


def _error(exc_info):
    body = exc_info.value.body
    return body.get("error", body) if isinstance(body, dict) else body


def test_bad_requests_name_the_problem(served, client):
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, adapters=[{"name": "no-such-adapter", "strength": 0.5}])
    err = _error(e)
    assert "no-such-adapter" in err["message"] and "shout" in err["message"]      # names it and the choices
    assert err["code"] == "adapter_not_found" and err["param"] == "adapters[0]"
    assert err["type"] == "invalid_request_error"

    with pytest.raises(openai.BadRequestError) as e:
        ask(client, adapters=[{"name": "shout", "strength": 5}])
    assert "outside [-2, 2]" in _error(e)["message"] and _error(e)["param"] == "adapters[0].strength"
    with pytest.raises(openai.BadRequestError, match="outside"):
        ask(client, content=f"<lora:shout:-3> {QUESTION}")
    with pytest.raises(openai.BadRequestError, match="unknown adapter 'nope'"):
        ask(client, content=f"<lora:nope:1> {QUESTION}")
    with pytest.raises(openai.NotFoundError, match="model 'gpt-4o' not found"):
        ask(client, model="gpt-4o")
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, content="word " * 2000)                            # the demo runs with 512 tokens
    assert _error(e)["code"] == "context_length_exceeded" and "does not fit" in _error(e)["message"]
    assert client.models.retrieve("tiny-deck-demo").owned_by == "loradeck"

    url = f"{served.url}/v1/chat/completions"
    cases = [
        ({"model": "tiny-deck-demo"}, "'messages' is required", "messages"),
        ({"messages": []}, "non-empty list", "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "role must be one of", "messages[0].role"),
        ({"messages": [{"role": ["user"], "content": "hi"}]}, "role must be one of", "messages[0].role"),  # was a 500
        ({"messages": [{"role": {}, "content": "hi"}]}, "role must be one of", "messages[0].role"),
        ({"messages": [{"role": "user", "content": "hi"}], "adapters": {"shout": 1}}, "must be a list", "adapters"),
        ({"messages": [{"role": "user", "content": "hi"}], "adapters": [{"name": "shout", "strength": "x"}]},
         "must be a number", "adapters[0].strength"),
        ({"messages": [{"role": "user", "content": "hi"}], "temperature": 9}, "between 0 and 2", "temperature"),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 3}, "only n=1", "n"),
        ({"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": ["x"]}, "must be an object",
         "chat_template_kwargs"),
        ({"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"bos_token": "x"}},
         "may only hold 'enable_thinking'", "chat_template_kwargs"),
        ({"messages": [{"role": "user", "content": "hi"}], "chat_template_kwargs": {"enable_thinking": "no"}},
         "must be true or false", "chat_template_kwargs"),
    ]
    for body, words, param in cases:
        status, got = http(url, body)
        assert status == 400, (body, got)
        assert words in got["error"]["message"] and got["error"]["param"] == param, (body, got)
    status, got = http(url, raw=b"{not json")
    assert status == 400 and "malformed JSON" in got["error"]["message"]
    for raw, why in [(b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),      # was a 500
                     (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "surrogate")]:
        status, got = http(url, raw=raw)
        assert status == 400 and got["error"]["code"] == "invalid_json" and why in got["error"]["message"], got
    status, got = http(f"{served.url}/v1/completions", {"model": "tiny-deck-demo"})
    assert status == 400 and "'prompt' is required" in got["error"]["message"]
    status, got = http(f"{served.url}/v1/nothing-here")
    assert status == 404 and set(got["error"]) == {"message", "type", "param", "code"}


def test_incompatible_adapter_refused_with_the_reason(served, client, tmp_path):
    sys.path.insert(0, str(TESTS / "engines"))
    import engine_models as em
    path = em.write_lora(tmp_path / "qwen-lora.gguf", em.make_lora(em.base_weights(32000), rank=4), arch="qwen2")
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, adapters=[{"name": str(path), "strength": 1.0}])   # a path works as a name, locally
    err = _error(e)
    assert err["code"] == "incompatible_adapter" and "incompatible" in err["message"]
    assert "qwen" in err["message"].lower(), err["message"]
    assert "Paris" in ask(client)                                      # the server is fine afterwards


def test_api_key(tmp_path):
    s = start_server(api_key="s3cret", library_root=tmp_path / "lib")
    try:
        with s.client() as c, pytest.raises(openai.AuthenticationError, match="invalid API key"):
            ask(c)
        status, got = http(f"{s.url}/v1/models")
        assert status == 401 and "missing API key" in got["error"]["message"]
        status, got = http(f"{s.url}/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]},
                           headers={"Authorization": "Bearer wrong"})
        assert status == 401 and got["error"]["code"] == "invalid_api_key"
        with openai.OpenAI(base_url=f"{s.url}/v1", api_key="s3cret", max_retries=0, timeout=60) as c:
            assert "Paris" in ask(c)
        assert http(f"{s.url}/health")[0] == 200                       # liveness needs no key
    finally:
        s.server.stop()


def test_concurrent_clients_are_queued_and_each_gets_its_own_mix(served, client):
    expected = {None: ask(client), "shout": ask(client, adapters=[{"name": "shout", "strength": 1.0}])}
    results, errors = [], []

    def worker(i: int):
        try:
            with served.client() as c:
                for k in range(2):
                    name = "shout" if (i + k) % 2 else None
                    adapters = [{"name": name, "strength": 1.0}] if name else []
                    stream = (i + k) % 3 == 0
                    if stream:
                        chunks = c.chat.completions.create(
                            model="tiny-deck-demo", messages=[{"role": "user", "content": QUESTION}],
                            extra_body={"adapters": adapters}, stream=True, **GREEDY)
                        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
                    else:
                        text = ask(c, adapters=adapters)
                    results.append((name, text))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    before = dict(served.app.state.worker.stats)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(results) == 8                                          # none lost
    for name, text in results:
        assert text == expected[name], (name, text)                   # no mix leaked between requests
    assert served.app.state.worker.stats["served"] - before["served"] == 8
    assert capital_fraction(expected["shout"]) > 0.8


def test_client_disconnect_cancels_generation(tmp_path, vocab_gguf):
    """A random-weight model (it almost never emits end-of-text) streams thousands of tokens; closing
    the stream after the first chunks must stop the engine, and the next request is served at once."""
    s = random_model_server(tmp_path, vocab_gguf)
    try:
        stats = s.app.state.worker.stats
        with s.client() as c:
            stream = c.chat.completions.create(model="random", messages=[{"role": "user", "content": "Go on"}],
                                               stream=True, max_tokens=4000, temperature=1.0, seed=1)
            got = 0
            for chunk in stream:
                got += bool(chunk.choices and chunk.choices[0].delta.content)
                if got >= 3:
                    break
            t0 = time.monotonic()
            stream.close()                                            # the client goes away
            deadline = t0 + 10
            while stats["cancelled"] < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert stats["cancelled"] == 1 and stats["served"] == 0
            r = c.chat.completions.create(model="random", messages=[{"role": "user", "content": "hi"}],
                                          max_tokens=5, temperature=0)
            assert r.choices[0].finish_reason == "length"
            assert time.monotonic() - t0 < 3.0                        # not after 4000 tokens
    finally:
        s.server.stop()


def test_an_oversized_body_is_refused_as_it_arrives(served):
    """The 8 MB limit on request bodies holds while they arrive: a declared length over it is refused
    at once, and a chunked body without one is answered once it passes the limit, not after the server
    has held all of it (Starlette's request.body() reads everything first)."""
    import socket
    import threading
    from urllib.parse import urlsplit

    u = urlsplit(served.url)
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
            "Content-Type: application/json\r\n").encode()
    with socket.create_connection((u.hostname, u.port), timeout=60) as s:
        s.sendall(head + b"Content-Length: 1000000000\r\n\r\n")                 # nothing follows
        assert s.recv(4096).startswith(b"HTTP/1.1 413")

    sent = [0]
    with socket.create_connection((u.hostname, u.port), timeout=60) as s:
        s.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * (1 << 20)

        def send() -> None:
            try:
                for _ in range(256):                                               # 256 MB
                    s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    sent[0] += 1
                s.sendall(b"0\r\n\r\n")
            except OSError:
                pass                                                               # the server closed it
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer = s.recv(4096)
        at_answer = sent[0]
        while b"}" not in answer and (more := s.recv(4096)):                   # the JSON body may follow
            answer += more
    assert answer.startswith(b"HTTP/1.1 413") and b"larger than 8 MB" in answer
    assert at_answer < 64, f"answered after {at_answer} MB had been sent"


def test_an_adapter_that_overflows_the_model_is_an_error_that_names_the_mix(served, client, tmp_path):
    """Logits that stop being numbers end the request with the reason, as a 400 (the same request would
    fail again; llama.cpp alone answered with meaningless tokens up to max_tokens); the server answers
    the next request as before."""
    import gguf
    import numpy as np

    src = gguf.GGUFReader(demo.demo_lora_gguf("shout"))
    path = tmp_path / "overflowing.gguf"
    w = gguf.GGUFWriter(str(path), bytes(src.fields["general.architecture"].parts[-1]).decode())
    w.add_type(gguf.GGUFType.ADAPTER)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(src.fields[gguf.Keys.Adapter.LORA_ALPHA].parts[-1][0]))
    for t in src.tensors:                          # finite, but far past what the activations can carry
        values = np.array(t.data, dtype=np.float32)
        w.add_tensor(t.name, values * np.float32(1e30) if t.name.endswith("lora_b") else values)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with pytest.raises(openai.BadRequestError) as e:      # a 4xx: the client does not retry it
        ask(client, adapters=[{"name": str(path), "strength": 0.5}])
    err = _error(e)
    assert err["code"] == "output_not_numbers" and err["param"] == "adapters"
    assert "stopped being numbers (NaN or infinite) while reading the conversation under this mix " \
           "(overflowing ×0.5)" in err["message"], err["message"]
    assert "Paris" in ask(client)
    with pytest.raises(openai.BadRequestError) as e:      # streamed: refused before the stream starts
        list(client.chat.completions.create(model="tiny-deck-demo", stream=True, extra_body={
            "adapters": [{"name": str(path), "strength": 0.5}]}, messages=[{"role": "user", "content": QUESTION}]))
    assert _error(e)["code"] == "output_not_numbers"
