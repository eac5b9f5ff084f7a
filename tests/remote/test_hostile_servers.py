"""A remote engine's server is whatever answers at the address the user typed: its answers are read
within bounds (engines/remote/http.py), so a body or a stream line that never ends, or a gzip bomb,
is a clear error and not the app's memory."""
from __future__ import annotations

import gzip
import json
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
