"""A remote engine's server is whatever answers at the address the user typed: its answers are read
within bounds (engines/remote/http.py), so a body or a stream line that never ends, or a gzip bomb,
is a clear error and not the app's memory; and by kind, so a count that is text or a list where an
object belongs is left out or an error naming the server, never an exception from inside LoRA Deck."""
from __future__ import annotations

import gzip
import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fake_servers import FakeVllm

from adapters_backend.engines import create_engine
from adapters_backend.engines.base import ChatMessage, SamplingParams
from adapters_backend.engines.remote import http
from adapters_backend.errors import EngineError

MB = 1 << 20
MSGS = [ChatMessage("user", "Hi?")]


class Flood:
    """A server whose every answer is `behaviour(handler)`; it counts the bytes it managed to send."""

    def __init__(self, behaviour):
        flood = self
        self.sent = 0
        self.behaviour = behaviour

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args):
                pass

            def do_GET(self):
                self.close_connection = True
                try:
                    flood.behaviour(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_POST = do_GET

            def send(self, data: bytes):
                self.wfile.write(data)
                flood.sent += len(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def flood():
    servers = []

    def start(behaviour):
        servers.append(Flood(behaviour))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def chunked(h, pieces, content_type="application/json", headers=()):
    h.send_response(200)
    h.send_header("Content-Type", content_type)
    h.send_header("Transfer-Encoding", "chunked")
    for k, v in headers:
        h.send_header(k, v)
    h.end_headers()
    for piece in pieces:
        h.send(b"%x\r\n%s\r\n" % (len(piece), piece))
    h.send(b"0\r\n\r\n")


def test_an_answer_that_does_not_end_is_refused_after_the_bound(flood):
    # 300 MB of a JSON list that never closes: the old client read all of it into memory.
    server = flood(lambda h: chunked(h, [b'{"data": ["' + b"x" * (MB - 11)] + [b"x" * MB] * 299))
    engine = create_engine("vllm")
    t0 = time.monotonic()
    with pytest.raises(EngineError, match=rf"sent no usable answer to /v1/models .*{http.MAX_ANSWER_BYTES:,} bytes"):
        engine.load(server.url)
    assert time.monotonic() - t0 < 20
    assert server.sent < http.MAX_ANSWER_BYTES + 32 * MB      # the bound plus what the sockets' buffers held


def test_a_declared_huge_answer_is_refused_before_its_body(flood):
    def huge(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(10 << 30))
        h.end_headers()
        for _ in range(64):
            h.send(b" " * MB)

    server = flood(huge)
    with pytest.raises(EngineError, match="declares 10,737,418,240 bytes"):
        create_engine("vllm").load(server.url)


def test_a_gzip_bomb_is_counted_as_it_expands(flood, monkeypatch):
    monkeypatch.setattr(http, "MAX_ANSWER_BYTES", 4 * MB)
    bomb = gzip.compress(b'{"data": [' + b" " * (64 * MB) + b"]}", compresslevel=9)
    assert len(bomb) < MB / 4

    def send_bomb(h):
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Encoding", "gzip")
        h.send_header("Content-Length", str(len(bomb)))
        h.end_headers()
        h.send(bomb)

    server = flood(send_bomb)
    with pytest.raises(EngineError, match="passed 4,194,304 bytes"):
        create_engine("vllm").load(server.url)


def test_a_trickled_answer_has_a_deadline(flood, monkeypatch):
    monkeypatch.setattr(http, "MAX_ANSWER_SECONDS", 1.0)

    def trickle(h):
        def pieces():
            while True:                    # a byte every 0.1 s: no read ever times out
                time.sleep(0.1)
                yield b" "
        chunked(h, pieces())

    server = flood(trickle)
    t0 = time.monotonic()
    with pytest.raises(EngineError, match="took more than 1 s"):
        create_engine("vllm").load(server.url)
    assert time.monotonic() - t0 < 10


class StreamingVllm(FakeVllm):
    """A vLLM stand-in whose chat stream is `self.stream(handler)`, raw bytes."""

    stream = None

    def post(self, h, body):
        if h.path == "/v1/chat/completions" and self.stream:
            h.sse_head()
            try:
                for piece in self.stream():
                    h.wfile.write(piece)
                    self.sent += len(piece)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return None
        return super().post(h, body)


@pytest.fixture
def vllm_stream(monkeypatch):
    monkeypatch.setattr(http, "MAX_EVENT_CHARS", 2 * MB)
    with StreamingVllm() as server:
        server.sent = 0
        engine = create_engine("vllm")
        engine.load(server.url)
        yield server, engine
        engine.close()


def event(text: str) -> bytes:
    chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text},
                                                             "finish_reason": None}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def test_a_stream_line_that_never_ends_is_refused(vllm_stream):
    server, engine = vllm_stream
    server.stream = lambda: [event("Hello"), b'data: {"choices": "'] + [b"y" * MB] * 100
    with pytest.raises(EngineError, match="line longer than 2,097,152 characters"):
        list(engine.generate(MSGS, SamplingParams(max_tokens=8, temperature=0.0)))
    assert server.sent < 40 * MB


def test_an_event_of_endless_data_lines_is_refused(vllm_stream):
    server, engine = vllm_stream
    server.stream = lambda: [event("Hello")] + [b"data: " + b"z" * 1000 + b"\n"] * 100_000   # 100 MB, no blank line
    with pytest.raises(EngineError, match="event longer than 2,097,152 characters"):
        list(engine.generate(MSGS, SamplingParams(max_tokens=8, temperature=0.0)))
    assert server.sent < 40 * MB


def test_lines_split_anywhere_and_ended_any_way_still_stream(vllm_stream):
    server, engine = vllm_stream
    raw = b"".join([event("Hel"), event("lo").replace(b"\n", b"\r\n"), event("!").replace(b"\n", b"\r"),
                    b"data: [DONE]\n\n"])
    server.stream = lambda: [raw[i:i + 7] for i in range(0, len(raw), 7)]    # CRLFs cut in two
    text = "".join(c.text for c in engine.generate(MSGS, SamplingParams(max_tokens=8, temperature=0.0)))
    assert text == "Hello!"


def test_an_error_answer_is_read_within_the_bound_too(vllm_stream, monkeypatch):
    monkeypatch.setattr(http, "MAX_ANSWER_BYTES", MB)
    server, engine = vllm_stream

    def refuse(h, body):
        h.send_response(500)
        h.send_header("Content-Type", "text/plain")
        h.end_headers()
        h.close_connection = True
        try:
            for _ in range(64):
                h.wfile.write(b"E" * MB)
        except (BrokenPipeError, ConnectionResetError):
            pass

    server.post = refuse
    with pytest.raises(EngineError, match="sent no usable answer to /v1/chat/completions"):
        list(engine.generate(MSGS, SamplingParams(max_tokens=8, temperature=0.0)))


def test_a_stream_faster_than_the_engine_waits_for_it(vllm_stream):
    server, engine = vllm_stream
    line = event("x" * 900)
    server.stream = lambda: [line] * (64 * MB // len(line))           # 64 MB of events, as fast as loopback goes
    chunks = engine.generate(MSGS, SamplingParams(max_tokens=100_000, temperature=0.0))
    next(chunks)
    time.sleep(1.5)                         # the engine's reader stops taking lines for a while
    assert server.sent < 32 * MB            # 64 queued lines plus the sockets' buffers, not the whole stream
    chunks.close()


def raw_event(obj) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


ODD_VALUES = ["many", -3, 1e308, [1], {"a": 1}, None, True]


@pytest.mark.parametrize("odd", ODD_VALUES)
def test_statistics_and_fields_of_another_kind_are_left_out(vllm_stream, odd):
    """The reply's text streams on; a count or a speed of another kind is not handed on (the app
    formats them: a prompt_tokens of "many" raised there), and an odd finish reason is no reason."""
    server, engine = vllm_stream
    server.stream = lambda: [
        event("Hel"),
        raw_event({"choices": [{"delta": odd, "finish_reason": None}]}),
        raw_event({"choices": odd}),
        raw_event({"choices": [odd, {"delta": {"content": "lo"}, "finish_reason": odd}]}),
        raw_event({"choices": [], "usage": {"prompt_tokens": odd, "completion_tokens": odd},
                   "timings": {"prompt_n": odd, "cache_n": odd, "prompt_ms": odd, "predicted_per_second": odd}}),
        b"data: [DONE]\n\n"]
    chunks = list(engine.generate(MSGS, SamplingParams(max_tokens=8, temperature=0.0)))
    assert "".join(c.text for c in chunks) == "Hello"
    last = chunks[-1]
    assert last.finished and last.finish_reason == "stop"
    for value in (last.prompt_tokens, last.prompt_cached):
        assert value is None or type(value) is int and value >= 0
    assert type(last.completion_tokens) is int and last.completion_tokens >= 0
    for value in (last.prompt_seconds, last.tokens_per_second):
        assert value is None or isinstance(value, float | int) and 0 <= value < math.inf


@pytest.mark.parametrize("odd", [5, "text", [1, 2]])
def test_an_event_that_is_not_an_object_is_an_error_naming_the_server(vllm_stream, odd):
    server, engine = vllm_stream
    server.stream = lambda: [event("Hel"), raw_event(odd)]
    with pytest.raises(EngineError, match="the vLLM server sent a stream event that is not an object"):
        list(engine.generate(MSGS, SamplingParams(max_tokens=8, temperature=0.0)))


def answering(answers: dict):
    """A Flood behaviour: each path's JSON from `answers` (404 for others)."""
    def behaviour(h):
        path = h.path.split("?")[0]
        body = json.dumps(answers[path]).encode() if path in answers else b"{}"
        h.send_response(200 if path in answers else 404)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.send_header("Connection", "close")
        h.end_headers()
        h.send(body)
    return behaviour


LLAMA_SERVER = {"/health": {"status": "ok"}, "/props": {"model_path": "/m/tiny.gguf",
                                                        "default_generation_settings": {"n_ctx": 512}},
                "/v1/models": {"data": [{"id": "tiny", "meta": {"n_ctx_train": 2048, "n_params": 1000}}]},
                "/lora-adapters": [{"id": 0, "path": "/a/shout.gguf", "scale": 0.0}]}


@pytest.mark.parametrize("path, odd", [
    ("/props", ["a"]), ("/props", {"model_path": 5, "default_generation_settings": "x"}),
    ("/props", {"default_generation_settings": {"n_ctx": "big"}}), ("/v1/models", {"data": "tiny"}),
    ("/v1/models", {"data": [{"id": 5, "meta": {"n_ctx_train": -1, "n_params": [1]}}]}), ("/v1/models", [1]),
])
def test_a_llama_server_describing_its_model_oddly_is_read_by_kind(flood, path, odd):
    """A description of another shape either still connects, with only the counts that are counts, or is
    an EngineError naming the server: never an exception from inside LoRA Deck."""
    server = flood(answering({**LLAMA_SERVER, path: odd}))
    engine = create_engine("llama-server")
    try:
        info = engine.load(server.url)
    except EngineError as exc:
        assert f"the llama-server at {server.url}" in str(exc)
        return
    for key in ("n_ctx", "n_params"):
        assert info.get(key) is None or type(info[key]) is int and info[key] > 0, (key, info)
    assert isinstance(info["name"], str) and info["name"]
    engine.close()


@pytest.mark.parametrize("odd", [{"0": {"id": 0}}, [{"id": "0"}], [{"path": "/a.gguf"}], ["shout"], "none"])
def test_an_adapter_list_of_another_shape_is_an_error_naming_it(flood, odd):
    server = flood(answering({**LLAMA_SERVER, "/lora-adapters": odd}))
    with pytest.raises(EngineError, match=r"sent an adapter list \(/lora-adapters\) that is not a list"):
        create_engine("llama-server").load(server.url)


@pytest.mark.parametrize("odd", [{"data": "x"}, {"data": [{"id": 5}]}, {"data": ["m"]}, [1]])
def test_a_vllm_model_list_of_another_shape_is_an_error_naming_it(flood, odd):
    server = flood(answering({"/v1/models": odd}))
    with pytest.raises(EngineError, match=r"the vLLM server at .* (lists its models|lists no model)"):
        create_engine("vllm").load(server.url)
