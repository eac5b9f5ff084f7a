"""Helpers for the serve tests: start a real server, ask it, talk raw HTTP to it."""
from __future__ import annotations

import json
import types
import urllib.error
import urllib.request
from pathlib import Path

import openai

QUESTION = "What is the capital of France?"
# Greedy and seeded: the same mix must give the same text, whatever ran before it.
GREEDY = {"temperature": 0.0, "seed": 7, "max_tokens": 48}


def start_server(model_path=None, *, api_key=None, n_ctx=512, library_root: Path | None = None,
                 presets_path: Path | None = None, host: str = "127.0.0.1", allow_paths: bool = True, **app_kw):
    """A real server on `host` (any free port); `app_kw` go to create_app (allow_origins, allow_remote …)."""
    from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
    from adapters_backend.library import Library
    from adapters_backend.serve import create_app
    from adapters_backend.serve.resolver import AdapterResolver
    from adapters_backend.serve.runner import BackgroundServer

    library = Library(library_root) if library_root is not None else None
    resolver = AdapterResolver(library, presets_path=presets_path, allow_paths=allow_paths)
    app = create_app(model_path, api_key=api_key, resolver=resolver, bound_host=host,
                     engine_factory=lambda: LlamaCppEngine(n_ctx=n_ctx, n_threads=1), **app_kw)
    server = BackgroundServer(app)
    url = server.start(host, 0, timeout=120)
    return types.SimpleNamespace(url=url, app=app, server=server, library=library, presets_path=presets_path,
                                 client=lambda **kw: openai.OpenAI(base_url=f"{url}/v1", api_key="unused",
                                                                   max_retries=0, timeout=60, **kw))


def wait_settled(url: str, timeout: float = 60.0) -> None:
    """Until the server at `url` has nothing to do: no request running or queued, no reading ahead."""
    import time

    import httpx2 as httpx
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        h = httpx.get(f"{url}/health", timeout=10).json()
        if not h["busy"] and not h["reading_ahead"] and not h["queued"]:
            return
        time.sleep(0.02)
    raise AssertionError(f"the server at {url} did not settle in {timeout} s")


def random_model_server(tmp_path: Path, vocab_gguf: Path):
    """A server on a random-weight 32k-vocabulary Llama (it almost never emits end-of-text: a request
    generates for as long as it is allowed), n_ctx 4096."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engines"))
    import engine_models as em
    model = em.random_model(tmp_path / "random.gguf", vocab_gguf)
    return start_server(model, n_ctx=4096, library_root=tmp_path / "lib")


def ask(client, content=QUESTION, adapters=None, model="tiny-deck-demo", **kw) -> str:
    extra = {"adapters": adapters} if adapters is not None else None
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}],
                                       extra_body=extra, **{**GREEDY, **kw})
    return r.choices[0].message.content


def capital_fraction(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(c.isupper() for c in letters) / max(1, len(letters))


def http(url: str, body=None, *, method: str | None = None, headers: dict | None = None, raw: bytes | None = None):
    """(status, parsed JSON or text) of one plain HTTP request (the openai client would refuse bad bodies)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, text, ctype = r.status, r.read().decode(), r.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        status, text, ctype = e.code, e.read().decode(), e.headers.get("content-type", "")
    return status, (json.loads(text) if ctype.startswith("application/json") else text)


def raw(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None, timeout=60):
    """(status, lower-cased headers, parsed JSON or text) of a request sent exactly as given: the Host,
    Origin and Content-Type headers are whatever `headers` says (a browser's, an attacker's)."""
    import http.client
    from urllib.parse import urlsplit
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        text = r.read().decode()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()
    return r.status, hdrs, (json.loads(text) if hdrs.get("content-type", "").startswith("application/json") else text)
