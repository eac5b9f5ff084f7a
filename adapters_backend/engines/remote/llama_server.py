"""Chat through a running llama.cpp `llama-server`, with its LoRA adapters mixed per request.

What llama-server can do (tools/server/README.md of the llama.cpp sources LoRA Deck vendors):
- Adapters are loaded only when the server starts (`--lora FILE.gguf`, repeatable). There is no
  endpoint to load a new one, so LoRA Deck can only use the adapters the server already has.
  `GET /lora-adapters` lists them as `[{"id", "path", "scale"}]`.
- Every request may carry `"lora": [{"id": 0, "scale": 0.5}, ...]`: any number of adapters at any
  float scale (negative subtracts), applied to that request only; adapters left out get scale 0.
  So the mix switches per request (hot switch) and several adapters mix, like the local engine.
- `POST /lora-adapters` only sets server-wide defaults; LoRA Deck never uses it (other clients of the
  same server keep their settings) and instead lists every adapter's scale in each request.
- No per-layer strengths, no merging.
- `POST /apply-template` renders a chat with the model's template and `POST /tokenize` counts its
  tokens, so a chat longer than the server's context is fitted to it as on the local engines
  (engines.context_window).

An adapter of the mix is matched to the server's list by path (same file), then file name, then
name (`shout` matches `.../shout.gguf`), so a library adapter converted to GGUF on this machine
finds the copy the server was started with.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ...errors import EngineError
from ..base import STRENGTH_RANGE, ActiveAdapter, EngineCapabilities, SamplingParams, adapter_display_name
from .common import OpenAIEvents, RemoteEngine, chat_messages, openai_sampling
from .http import RemoteClient

TOKEN_CACHE = 4096        # message texts whose tokens are kept, the oldest dropped first
CAPABILITIES = EngineCapabilities(hot_switch=True, multi_adapter=True, negative_strength=True,
                                  per_layer_strength=False, merge=False, gpu_offload=False,
                                  strength_range=STRENGTH_RANGE)
_PROBE = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello th"}]


class LlamaServerEngine(RemoteEngine):
    engine_id = "llama-server"
    kind = "llama-server"
    capabilities = CAPABILITIES

    def __init__(self, api_key: str | None = None, timeout: float = 30.0, cache_prompt: bool | None = None,
                 **local_options):
        super().__init__(api_key=api_key, timeout=timeout, **local_options)
        self.cache_prompt = cache_prompt       # None: the server's default (reuse the prompt's KV)
        self._server_adapters: list[dict] = []
        self._model_id: str | None = None
        self._token_cache: dict[tuple[str, bool], list] = {}    # oldest first

    def _describe(self, client: RemoteClient) -> dict:
        self._token_cache.clear()             # another server, or the same one restarted with another model
        health = client.request("GET", "/health", ok_404=True)
        if health.status_code == 503:
            raise EngineError(f"the llama-server at {client.url} is still loading its model; try again shortly")
        props = client.get_json("/props", ok_404=True) or {}
        models = client.get_json("/v1/models", ok_404=True) or {}
        data = models.get("data") or [{}]
        meta = data[0].get("meta") or {}
        self._model_id = data[0].get("id")
        self._server_adapters = self._fetch_adapters(client)
        settings = props.get("default_generation_settings") or {}
        names = ", ".join(f"{adapter_display_name(a['path'])} (id {a['id']})" for a in self._server_adapters)
        note = ("llama-server loads adapters only when it starts (--lora FILE.gguf); "
                + (f"this one has {len(self._server_adapters)}: {names}." if self._server_adapters
                   else "this one was started without any, so only the base model is available."))
        model_path = props.get("model_path") or self._model_id or client.url
        # It continues a conversation that ends with the assistant's text (its "prefill", unless started
        # with --no-prefill-assistant, or older): then an answer cut short can be continued through it.
        try:
            probe = client.json("POST", "/apply-template", {"messages": _PROBE}, ok_404=True)
        except EngineError:                  # a server without /apply-template: no prefill either
            probe = None
        prefills = isinstance(probe, dict) and str(probe.get("prompt", "")).endswith(_PROBE[-1]["content"])
        self.capabilities = replace(CAPABILITIES, continue_answer=prefills)
        return {"name": Path(str(model_path)).stem or client.url, "model_path": model_path,
                "n_ctx": settings.get("n_ctx") or meta.get("n_ctx_train"),
                "n_params": meta.get("n_params"), "note": note,
                "server_adapters": [dict(a) for a in self._server_adapters]}

    # -- token counts, for engines.context_window --
    def prompt_tokens(self, messages, add_generation_prompt: bool = True) -> list[int]:
        """The tokens the server makes of `messages` in a chat request (its template, then its tokenizer).
        /apply-template always opens the assistant's turn, as a chat request does, so
        `add_generation_prompt=False` is not honoured: this counts the prompt a request would send."""
        client = self._require()
        rendered = client.json("POST", "/apply-template", {"messages": chat_messages(messages)})
        prompt = rendered.get("prompt") if isinstance(rendered, dict) else None
        if not isinstance(prompt, str):
            raise EngineError(f"the llama-server at {client.url} sent no prompt for /apply-template")
        return self._tokenize(prompt, True)

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        """Tokens of one text; kept for the next call (a chat's messages are counted at every turn)."""
        key = (text, add_bos)
        if key not in self._token_cache:
            if len(self._token_cache) >= TOKEN_CACHE:
                self._token_cache.pop(next(iter(self._token_cache)))
            self._token_cache[key] = self._tokenize(text, add_bos)
        return list(self._token_cache[key])

    def _tokenize(self, text: str, add_special: bool) -> list[int]:
        client = self._require()
        got = client.json("POST", "/tokenize", {"content": text, "add_special": add_special})
        tokens = got.get("tokens") if isinstance(got, dict) else None
        if not (isinstance(tokens, list) and all(type(t) is int for t in tokens)):
            raise EngineError(f"the llama-server at {client.url} sent no tokens for /tokenize")
        return tokens

    def _fetch_adapters(self, client: RemoteClient) -> list[dict]:
        listed = client.get_json("/lora-adapters", ok_404=True)
        if listed is None:
            raise EngineError(f"{client.url} has no /lora-adapters endpoint: it is not a llama-server, or one "
                              "too old for per-request adapters")
        if not (isinstance(listed, list) and all(isinstance(a, dict) and type(a.get("id")) is int for a in listed)):
            raise EngineError(f"the llama-server at {client.url} sent an adapter list (/lora-adapters) that is "
                              f"not a list of adapters with ids: {str(listed)[:200]}")
        return [{"id": a["id"], "path": str(a.get("path", "")), "scale": a.get("scale")} for a in listed]

    def server_adapters(self) -> list[dict]:
        """The adapters the server was started with: `[{"id", "path", "scale"}]`."""
        return [dict(a) for a in self._server_adapters]

    def _map_mix(self, client: RemoteClient, adapters: list[ActiveAdapter]):
        if adapters:                      # the server may have been restarted with other adapters
            self._server_adapters = self._fetch_adapters(client)
        scales = {a["id"]: 0.0 for a in self._server_adapters}
        for a in adapters:
            if a.strength == 0.0:
                continue                  # off: nothing to find on the server
            scales[self._match(a)["id"]] += a.strength
        # Every adapter listed, so server-wide defaults set by others never leak into this mix.
        return [{"id": i, "scale": s} for i, s in sorted(scales.items())]

    def _match(self, a: ActiveAdapter) -> dict:
        want = Path(a.path).expanduser()
        names = {n.lower() for n in (a.name, a.display_name, a.path) if n}

        def same_file(server_path: str) -> bool:
            try:
                return Path(server_path).resolve() == want.resolve()
            except OSError:
                return False

        for test in (lambda s: s["path"] == a.path or same_file(s["path"]),
                     lambda s: Path(s["path"]).name.lower() == want.name.lower(),
                     lambda s: adapter_display_name(s["path"]).lower() in names):
            found = [s for s in self._server_adapters if test(s)]
            if found:
                return found[0]
        have = ", ".join(f"{Path(s['path']).name} (id {s['id']})" for s in self._server_adapters) or "none"
        raise EngineError(f"adapter {a.display_name!r} is not loaded on the llama-server at {self._client.url} "
                          f"(it has: {have}). llama-server loads adapters only at start: restart it with "
                          f"--lora <the adapter's .gguf> added (and --lora-init-without-apply so it starts off)")

    def _request(self, messages, params: SamplingParams, plan):
        body = {"messages": chat_messages(messages), "stream": True, "lora": plan, **openai_sampling(params),
                # llama-server's own sampling fields, so a remote chat samples like the local engine
                "top_k": int(params.top_k), "min_p": float(params.min_p),
                "repeat_penalty": float(params.repeat_penalty)}
        if self._model_id:
            body["model"] = self._model_id
        if self.cache_prompt is not None:
            body["cache_prompt"] = bool(self.cache_prompt)
        # The server's reply to a prefill starts with the text it was given: the reader leaves that out.
        going_on = messages[-1].content if messages and messages[-1].role == "assistant" else ""
        return "/v1/chat/completions", body, OpenAIEvents(echoed=going_on)


__all__ = ["CAPABILITIES", "LlamaServerEngine"]
