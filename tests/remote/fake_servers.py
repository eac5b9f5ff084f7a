"""Small protocol-faithful stand-ins for vLLM and LoRAX (GPU servers that cannot run here).

Stdlib ThreadingHTTPServer on 127.0.0.1, random port. They implement only the endpoints and field
names the engines use, as the projects document them, and record every request so tests can check
what the engine sent:

vLLM (docs/features/lora.md, "Serving LoRA Adapters" / "Dynamically serving LoRA Adapters"):
- GET /v1/models: {"object": "list", "data": [{"id", "object": "model", "root", "parent"}]}; adapters
  have `parent` = base id, `root` = their path; the base has `parent: null`.
- POST /v1/load_lora_adapter {"lora_name", "lora_path"} → 200 text "Success: LoRA adapter '<name>' added
  successfully"; an error body otherwise. Absent (404) without VLLM_ALLOW_RUNTIME_LORA_UPDATING.
- POST /v1/unload_lora_adapter {"lora_name"} → 200 "Success: LoRA adapter '<name>' removed successfully".
- POST /v1/chat/completions: OpenAI fields; `model` = base id or adapter name; stream = SSE
  `data: {chat.completion.chunk}` lines, then `data: [DONE]`. Unknown model → 404 with an OpenAI-style
  error `{"object": "error", "message", "type", "code"}`.

LoRAX (docs/reference/openapi.json, docs/guides/openai_api.md, docs/guides/merging_adapters.md,
router/src/validation.rs at a7394ba):
- GET /info: {"model_id", "max_total_tokens", "version", ...}.
- POST /v1/chat/completions: `model` "" or the base id = no adapter, else the adapter id;
  `adapter_source`; SSE of chat chunks, then `data: [DONE]`.
- POST /generate_stream {"inputs", "parameters": {"adapter_id", "adapter_source", "merged_adapters":
  {"ids", "weights", "merge_strategy", "density", "majority_sign_method"}, "max_new_tokens", ...}}:
  SSE of StreamResponse {"token": {"id", "text", "logprob", "special"}, "generated_text", "details":
  {"finish_reason": "length"|"eos_token"|"stop_sequence", "prompt_tokens", "generated_tokens"}}.
  Errors are ErrorResponse {"error", "error_type"}: 422 "at most one of `adapter_id` or `adapters` may be
  provided", "number of adapter IDs must match number of adapter weights"; during a stream, an event
  carrying ErrorResponse.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_args):            # keep test output clean
        pass

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        return json.loads(raw) if raw else None

    def _send(self, status: int, obj, content_type="application/json"):
        data = obj.encode() if isinstance(obj, str) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def sse_head(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, events, delay: float = 0.0):
        self.sse_head()
        try:
            for ev in events:
                payload = ev if isinstance(ev, str) else json.dumps(ev)
                self.wfile.write(f"data: {payload}\n\n".encode())
                self.wfile.flush()
                if delay:
                    time.sleep(delay)
        except (BrokenPipeError, ConnectionResetError):
            self.server.fake.disconnected.set()   # the client closed the stream (cancel)

    def do_GET(self):
        self.server.fake.record("GET", self.path, None)
        self.server.fake.get(self)

    def do_POST(self):
        body = self._body()
        self.server.fake.record("POST", self.path, body)
        self.server.fake.post(self, body)


class FakeServer:
    words = ["Hello", " from", " the", " fake", " server", "."]
    thoughts: list[str] = []                     # reasoning streamed before the words …
    thoughts_field = "reasoning_content"         # … in this delta field (vLLM ≥ 0.10: "reasoning")

    def __init__(self):
        self.requests: list[tuple[str, str, object]] = []
        self.delay = 0.0                        # seconds between streamed events
        self.disconnected = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    def record(self, method, path, body):
        self.requests.append((method, path, body))

    def posted(self, path):
        return [b for m, p, b in self.requests if m == "POST" and p == path]

    def chat_events(self, model, n_words=None):
        words = self.words if n_words is None else (self.words * 100)[:n_words]
        base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": model}
        yield {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]}
        for t in self.thoughts:
            yield {**base, "choices": [{"index": 0, "delta": {"content": None, self.thoughts_field: t},
                                        "finish_reason": None}]}
        for w in words:
            yield {**base, "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield {**base, "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": len(words),
                                                "total_tokens": 7 + len(words)}}
        yield "[DONE]"


class FakeVllm(FakeServer):
    def __init__(self, runtime_updates: bool = True):
        super().__init__()
        self.base = "meta-llama/Llama-3.2-1B-Instruct"
        self.loras = {"sql-lora": "/srv/adapters/sql"}    # started with --lora-modules sql-lora=/srv/adapters/sql
        self.runtime_updates = runtime_updates

    def _models(self):
        data = [{"id": self.base, "object": "model", "owned_by": "vllm", "root": self.base, "parent": None,
                 "max_model_len": 8192}]
        data += [{"id": k, "object": "model", "owned_by": "vllm", "root": v, "parent": self.base}
                 for k, v in self.loras.items()]
        return {"object": "list", "data": data}

    def get(self, h):
        if h.path == "/v1/models":
            return h._send(200, self._models())
        h._send(404, {"detail": "Not Found"})

    def post(self, h, body):
        if h.path in ("/v1/load_lora_adapter", "/v1/unload_lora_adapter") and not self.runtime_updates:
            return h._send(404, {"detail": "Not Found"})
        if h.path == "/v1/load_lora_adapter":
            name, path = body["lora_name"], body["lora_path"]
            if name in self.loras:
                return h._send(400, {"object": "error", "message": f"The lora adapter '{name}' has already been "
                                     "loaded.", "type": "InvalidUserInput", "code": 400})
            if "missing" in path:
                return h._send(404, {"object": "error", "message": f"No adapter found for {path}",
                                     "type": "NotFoundError", "code": 404})
            self.loras[name] = path
            return h._send(200, f"Success: LoRA adapter '{name}' added successfully.", "text/plain")
        if h.path == "/v1/unload_lora_adapter":
            self.loras.pop(body["lora_name"], None)
            return h._send(200, f"Success: LoRA adapter '{body['lora_name']}' removed successfully.", "text/plain")
        if h.path == "/v1/chat/completions":
            model = body.get("model")
            if model != self.base and model not in self.loras:
                return h._send(404, {"object": "error", "message": f"The model `{model}` does not exist.",
                                     "type": "NotFoundError", "code": 404})
            return h._sse(self.chat_events(model, body.get("max_tokens") if self.delay else None), self.delay)
        h._send(404, {"detail": "Not Found"})


class FakeLorax(FakeServer):
    def __init__(self):
        super().__init__()
        self.model_id = "mistralai/Mistral-7B-Instruct-v0.1"

    def get(self, h):
        if h.path == "/info":
            return h._send(200, {"model_id": self.model_id, "model_dtype": "torch.float16",
                                 "model_device_type": "cuda", "max_concurrent_requests": 128, "max_best_of": 2,
                                 "max_stop_sequences": 4, "max_input_length": 1024, "max_total_tokens": 2048,
                                 "waiting_served_ratio": 1.2, "max_batch_total_tokens": 32000,
                                 "max_waiting_tokens": 20, "validation_workers": 2, "version": "0.12.1"})
        if h.path == "/health":
            return h._send(200, "")
        h._send(404, {"error": "not found", "error_type": "not_found"})

    def post(self, h, body):
        if h.path == "/v1/chat/completions":
            return h._sse(self.chat_events(body.get("model") or self.model_id), self.delay)
        if h.path == "/generate_stream":
            p = body.get("parameters") or {}
            merged = p.get("merged_adapters")
            if merged and p.get("adapter_id"):
                return h._send(422, {"error": "at most one of `adapter_id` or `adapters` may be provided",
                                     "error_type": "validation"})
            if merged and len(merged.get("ids") or []) != len(merged.get("weights") or []):
                return h._send(422, {"error": "number of adapter IDs must match number of adapter weights",
                                     "error_type": "validation"})
            return h._sse(self._native(body), self.delay)
        h._send(404, {"error": "not found", "error_type": "not_found"})

    def _native(self, body):
        if "FAIL" in body["inputs"]:
            yield {"token": {"id": 1, "text": "Par", "logprob": -0.1, "special": False}, "generated_text": None,
                   "details": None}
            yield {"error": "Request failed during generation: CUDA out of memory", "error_type": "generation"}
            return
        words = ["Merged", " answer", "."]
        for i, w in enumerate(words):
            yield {"token": {"id": 10 + i, "text": w, "logprob": -0.5, "special": False},
                   "generated_text": None, "details": None}
        yield {"token": {"id": 2, "text": "</s>", "logprob": -0.01, "special": True},
               "generated_text": "".join(words),
               "details": {"finish_reason": "eos_token", "prompt_tokens": 12, "generated_tokens": 4, "seed": None}}
