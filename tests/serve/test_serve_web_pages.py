"""Web pages cannot drive the server: a cross-site text/plain POST, a foreign Origin and a DNS-rebinding
Host are refused before anything runs; CORS is off unless an origin is allowed; a remote client never
reads a local path in an error; a dead engine thread is reported at once instead of hanging requests."""
from __future__ import annotations

import ctypes
import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from serve_testlib import GREEDY, QUESTION, random_model_server, raw, start_server

from adapters_backend import demo

CHAT = json.dumps({"model": "tiny-deck-demo", "messages": [{"role": "user", "content": QUESTION}],
                   **GREEDY}).encode()
EVIL = "https://evil.example"
TESTS = Path(__file__).resolve().parents[1]


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def test_cross_site_text_plain_post_is_refused(served):
    stats = served.app.state.worker.stats
    before = dict(stats)
    # What a page's fetch(..., {method: "POST", mode: "no-cors", body}) sends: no preflight, text/plain.
    for ctype in ("text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; b=x"):
        status, headers, got = raw(served.url, "POST", "/v1/chat/completions", CHAT, {"Content-Type": ctype})
        assert status == 415, (ctype, got)
        assert got["error"]["code"] == "unsupported_media_type" and "application/json" in got["error"]["message"]
        assert not any(k.startswith("access-control-") for k in headers)
    status, _, got = raw(served.url, "POST", "/v1/chat/completions", CHAT)               # no Content-Type at all
    assert status == 415
    # The same request from a page on another site is refused for its Origin, before its body is read.
    status, headers, got = raw(served.url, "POST", "/v1/chat/completions", CHAT,
                               {"Content-Type": "text/plain", "Origin": EVIL})
    assert status == 403 and got["error"]["code"] == "origin_not_allowed" and EVIL in got["error"]["message"]
    assert "--allow-origin" in got["error"]["message"]
    assert stats == before                                          # nothing was generated
    status, _, got = raw(served.url, "POST", "/v1/chat/completions", CHAT,
                         {"Content-Type": "application/json; charset=utf-8"})
    assert status == 200 and "Paris" in got["choices"][0]["message"]["content"]


def test_foreign_origin_is_refused_and_cors_is_off(served):
    json_ct = {"Content-Type": "application/json"}
    for method, path, body in (("POST", "/v1/chat/completions", CHAT), ("GET", "/v1/models", None),
                               ("GET", "/v1/adapters", None), ("GET", "/health", None)):
        status, headers, got = raw(served.url, method, path, body, {**json_ct, "Origin": EVIL})
        assert status == 403, (path, got)
        assert not any(k.startswith("access-control-") for k in headers), headers
    for origin in ("null", "http://localhost:3000", "http://127.0.0.1:1"):   # not allowed by default either
        status, _, _ = raw(served.url, "GET", "/v1/models", None, {"Origin": origin})
        assert status == 403, origin
    # A preflight is not answered for a foreign page.
    status, headers, _ = raw(served.url, "OPTIONS", "/v1/chat/completions", None,
                             {"Origin": EVIL, "Access-Control-Request-Method": "POST",
                              "Access-Control-Request-Headers": "content-type"})
    assert status == 403 and "access-control-allow-origin" not in headers
    # Programs (no Origin) work as before, and get no CORS headers either.
    status, headers, got = raw(served.url, "GET", "/v1/models", None)
    assert status == 200 and got["data"][0]["id"] == "tiny-deck-demo"
    assert not any(k.startswith("access-control-") for k in headers)


def test_allowed_origin_gets_cors_and_others_do_not(tmp_path):
    page = "http://localhost:3000"
    s = start_server(library_root=tmp_path / "lib", allow_origins=[page + "/"])     # trailing slash: same origin
    try:
        status, headers, _ = raw(s.url, "OPTIONS", "/v1/chat/completions", None,
                                 {"Origin": page, "Access-Control-Request-Method": "POST",
                                  "Access-Control-Request-Headers": "authorization, content-type"})
        assert status == 200 and headers["access-control-allow-origin"] == page
        assert "POST" in headers["access-control-allow-methods"]
        assert "content-type" in headers["access-control-allow-headers"].lower()
        status, headers, got = raw(s.url, "POST", "/v1/chat/completions", CHAT,
                                   {"Origin": page, "Content-Type": "application/json"})
        assert status == 200 and headers["access-control-allow-origin"] == page
        assert "Paris" in got["choices"][0]["message"]["content"]
        # Its refusals are readable by the page too (a text/plain POST still is refused).
        status, headers, _ = raw(s.url, "POST", "/v1/chat/completions", CHAT, {"Origin": page, "Content-Type": "text/plain"})
        assert status == 415 and headers["access-control-allow-origin"] == page
        for other in (EVIL, "http://localhost:3001", "https://localhost:3000"):
            status, headers, _ = raw(s.url, "OPTIONS", "/v1/chat/completions", None,
                                     {"Origin": other, "Access-Control-Request-Method": "POST"})
            assert status == 403 and "access-control-allow-origin" not in headers, other
    finally:
        s.server.stop()


def test_dns_rebinding_host_is_refused(served):
    port = port_of(served.url)
    stats = served.app.state.worker.stats
    before = dict(stats)
    for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.evil.example:{port}", f"localhost.evil:{port}",
                 f"[::2]:{port}", "192.168.1.10"):
        status, headers, got = raw(served.url, "POST", "/v1/chat/completions", CHAT,
                                   {"Host": host, "Content-Type": "application/json"})
        assert status == 403, (host, got)
        assert got["error"]["code"] == "host_not_allowed" and "--allow-remote" in got["error"]["message"]
        status, _, _ = raw(served.url, "GET", "/v1/adapters", None, {"Host": host})
        assert status == 403, host
    assert stats == before
    for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}", "[::1]",
                 "localhost:9999"):                       # another port: an SSH tunnel forwards to this one
        status, _, got = raw(served.url, "GET", "/v1/models", None, {"Host": host})
        assert status == 200, (host, got)


def _lan_address() -> str | None:
    """This machine's address on a non-loopback interface (None when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))             # picks the outgoing interface; sends nothing
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


def test_remote_server_accepts_any_host_but_shows_remote_clients_no_paths(tmp_path):
    lan = _lan_address()
    if lan is None:
        pytest.skip("no non-loopback network interface to connect from")
    s = start_server(library_root=tmp_path / "lib", host="0.0.0.0", allow_remote=True, allow_paths=False)
    try:
        port = port_of(s.url)
        remote, local = f"http://{lan}:{port}", f"http://127.0.0.1:{port}"
        status, _, _ = raw(remote, "GET", "/v1/models", None, {"Host": f"my-box.lan:{port}"})
        assert status == 200                                         # --allow-remote: any name
        # A library adapter whose file got damaged: the error names the file for this machine only.
        src = tmp_path / "shout.gguf"
        shutil.copyfile(demo.demo_lora_gguf("shout"), src)
        entry = s.library.install(src, name="broken")
        stored = entry.engine_path if getattr(entry, "engine_path", None) else entry.path
        with open(stored, "r+b") as f:
            f.truncate(40)
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "adapters": ["broken"]}).encode()
        status, _, here = raw(local, "POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        assert status == 400 and str(tmp_path) in here["error"]["message"], here
        status, _, there = raw(remote, "POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        assert status == 400 and "broken" in there["error"]["message"], there
        assert str(tmp_path) not in there["error"]["message"] and "<local path>" in there["error"]["message"]
        # File paths as adapter names are not probed for remote servers at all.
        probe = json.dumps({"messages": [{"role": "user", "content": "hi"}], "adapters": [str(src)]}).encode()
        status, _, there = raw(remote, "POST", "/v1/chat/completions", probe, {"Content-Type": "application/json"})
        assert status == 400 and there["error"]["code"] == "adapter_not_found"
        assert str(tmp_path) not in json.dumps(there)
        status, _, listing = raw(remote, "GET", "/v1/adapters", None)
        assert status == 200 and str(tmp_path) not in json.dumps(listing)
    finally:
        s.server.stop()


def test_listings_show_paths_to_this_machine_only(tmp_path):
    """Even where adapter names may be paths, /v1/models and /v1/adapters list no path to another machine."""
    lan = _lan_address()
    if lan is None:
        pytest.skip("no non-loopback network interface to connect from")
    s = start_server(library_root=tmp_path / "lib", host="0.0.0.0", allow_remote=True, allow_paths=True)
    try:
        port = port_of(s.url)
        here = [raw(f"http://127.0.0.1:{port}", "GET", p, None)[2] for p in ("/v1/models", "/v1/adapters")]
        there = [raw(f"http://{lan}:{port}", "GET", p, None)[2] for p in ("/v1/models", "/v1/adapters")]
        assert here[0]["data"][0]["path"] and all("path" in a for a in here[1]["data"])
        assert there[0]["data"][0]["path"] is None and not any("path" in a for a in there[1]["data"])
        assert [a["name"] for a in there[1]["data"]] == [a["name"] for a in here[1]["data"]]
    finally:
        s.server.stop()


def _kill_thread(thread: threading.Thread) -> None:
    """Raise SystemExit inside `thread` (what a crash that escapes the request handling does)."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit))
    assert done == 1


def test_dead_engine_thread_fails_requests_at_once(tmp_path):
    s = start_server(library_root=tmp_path / "lib")
    try:
        worker = s.app.state.worker
        status, _, health = raw(s.url, "GET", "/health", None)
        assert status == 200 and health["status"] == "ok"
        _kill_thread(worker._thread)           # delivered when the idle thread takes the next request
        ct = {"Content-Type": "application/json"}
        t0 = time.monotonic()
        status, _, got = raw(s.url, "POST", "/v1/chat/completions", CHAT, ct, timeout=20)
        assert status == 503, got
        assert got["error"]["code"] == "engine_stopped" and "restart the server" in got["error"]["message"]
        worker._thread.join(10)
        assert not worker._thread.is_alive()
        status, _, health = raw(s.url, "GET", "/health", None)
        assert status == 503 and health["status"] == "error" and "SystemExit" in health["error"]
        # Later requests are refused at once, streamed or not.
        status, _, got = raw(s.url, "POST", "/v1/chat/completions", CHAT, ct, timeout=20)
        assert status == 503 and "engine stopped" in got["error"]["message"]
        streamed = json.dumps({**json.loads(CHAT), "stream": True}).encode()
        status, _, got = raw(s.url, "POST", "/v1/chat/completions", streamed, ct, timeout=20)
        assert status == 503
        assert time.monotonic() - t0 < 10
    finally:
        s.server.stop()


def test_engine_thread_dying_mid_reply_ends_it_and_every_queued_request(tmp_path, vocab_gguf, monkeypatch):
    """A random-weight model (it almost never stops) is generating for one request, three wait behind
    it; the thread dies: all four end with 503 at once, none waits for ever.

    The crash is raised between two tokens, in the engine thread's own Python code: an asynchronous
    exception would mostly land in llama.cpp's abort callback, where ctypes swallows it (and llama.cpp
    sees an abort: the request fails as a broken decode, not as a dead thread)."""
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    die = threading.Event()
    real_generate = LlamaCppEngine.generate

    def generate(self, *args, **kwargs):
        for chunk in real_generate(self, *args, **kwargs):
            if die.is_set():
                raise SystemExit("a crash that escapes the request handling")
            yield chunk

    monkeypatch.setattr(LlamaCppEngine, "generate", generate)
    s = random_model_server(tmp_path, vocab_gguf)
    try:
        worker = s.app.state.worker
        long = json.dumps({"messages": [{"role": "user", "content": "Go on"}], "max_tokens": 4000,
                           "temperature": 1.0, "seed": 3}).encode()
        results = []

        def ask():
            results.append(raw(s.url, "POST", "/v1/chat/completions", long,
                               {"Content-Type": "application/json"}, timeout=60))
        threads = [threading.Thread(target=ask) for _ in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while not (worker.busy and worker.queued == 3) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert worker.busy and worker.queued == 3
        t0 = time.monotonic()
        die.set()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads) and time.monotonic() - t0 < 10
        assert [r[0] for r in results] == [503] * 4, results
        assert all(r[2]["error"]["code"] == "engine_stopped" for r in results)
        assert worker.queued == 0 and raw(s.url, "GET", "/health", None)[0] == 503
    finally:
        s.server.stop()
