"""Chat through a running vLLM server (`vllm serve BASE --enable-lora`), one adapter per request.

What vLLM can do (vLLM docs, features/lora.md "Serving LoRA Adapters" / "Dynamically serving LoRA
Adapters"):
- An adapter is chosen per request by putting its name in the OpenAI `model` field; the base model's
  own id means no adapter. `GET /v1/models` lists the base and every adapter (adapters carry
  `parent` = the base id and `root` = their path).
- Adapters are named at start (`--lora-modules name=path`) or loaded while running with
  `POST /v1/load_lora_adapter {"lora_name", "lora_path"}` (and removed with
  `POST /v1/unload_lora_adapter {"lora_name"}`), only if the server runs with
  `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`. `lora_path` is read by the server, so it must be a path
  on the server's machine (or wherever the server's resolver looks).
- **No strength**: a request names one adapter and it applies at full scale; there is no field to
  scale it and no way to mix two. So this engine accepts one adapter at strength 1 (0 = off) and
  refuses anything else with a message saying so.
"""
from __future__ import annotations

import logging

from ...errors import EngineError
from ..base import ActiveAdapter, EngineCapabilities, SamplingParams
from .common import OpenAIEvents, RemoteEngine, chat_messages, openai_sampling
from .http import RemoteClient, error_text

log = logging.getLogger(__name__)

CAPABILITIES = EngineCapabilities(hot_switch=True, multi_adapter=False, negative_strength=False,
                                  per_layer_strength=False, merge=False, gpu_offload=False,
                                  strength_range=(1.0, 1.0))


class VllmEngine(RemoteEngine):
    engine_id = "vllm"
    kind = "vLLM"
    capabilities = CAPABILITIES
    strength_note = "vLLM has no adapter strength"

    def __init__(self, api_key: str | None = None, timeout: float = 60.0, load_adapters: bool = True,
                 **local_options):
        super().__init__(api_key=api_key, timeout=timeout, **local_options)
        self.load_adapters = bool(load_adapters)  # False: use only adapters the server already has
        self._base_id: str | None = None
        self._loras: dict[str, str] = {}           # adapter name on the server -> its root (path)
        self._loaded_by_us: list[str] = []

    def _describe(self, client: RemoteClient) -> dict:
        models = _models(client)
        base = [m for m in models if not m.get("parent")]
        if not base:
            raise EngineError(f"the vLLM server at {client.url} lists no model in /v1/models")
        self._base_id = str(base[0]["id"])
        self._loras = {str(m["id"]): str(m.get("root") or "") for m in models if m.get("parent")}
        note = ("vLLM applies one adapter per request, at full strength (no strength control, no mixing)."
                + (f" Adapters on the server: {', '.join(self._loras)}." if self._loras else ""))
        return {"name": self._base_id, "n_ctx": base[0].get("max_model_len"), "note": note,
                "server_adapters": sorted(self._loras)}

    def _refresh(self, client: RemoteClient) -> None:
        models = _models(client)
        self._loras = {str(m["id"]): str(m.get("root") or "") for m in models if m.get("parent")}

    def _map_mix(self, client: RemoteClient, adapters: list[ActiveAdapter]) -> str:
        active = [a for a in adapters if a.strength != 0.0]
        if len(active) > 1:
            raise EngineError("vLLM applies only one adapter per request, so it cannot mix "
                              + " and ".join(repr(a.display_name) for a in active)
                              + "; turn all but one off, or use llama-server, LoRAX or a local engine to mix")
        if not active:
            return self._base_id
        a = active[0]
        if a.strength != 1.0:
            raise EngineError(f"vLLM has no adapter strength: {a.display_name} can only run at strength 1 "
                              f"(or 0 for off), not {a.strength:g}")
        return self._server_name(client, a)

    def _server_name(self, client: RemoteClient, a: ActiveAdapter) -> str:
        self._refresh(client)
        for name in (a.name, a.display_name, a.path):
            if name and name in self._loras:
                return name
        for name, root in self._loras.items():
            if root and root == a.path:
                return name
        if not self.load_adapters:
            raise EngineError(f"adapter {a.display_name!r} is not on the vLLM server at {client.url} (it has: "
                              f"{', '.join(self._loras) or 'none'}); start it with --lora-modules NAME=PATH")
        name, k = a.display_name, 2
        while name in self._loras:                 # the name is taken by another adapter
            name, k = f"{a.display_name}-{k}", k + 1
        try:
            resp = client.request("POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": a.path},
                                  ok_404=True)
        except EngineError as exc:
            raise EngineError(f"the vLLM server could not load adapter {a.display_name!r} from {a.path} ({exc}); "
                              "the path is read by the server, so it must exist on the server's machine") from exc
        if resp.status_code == 404 and _route_missing(resp):
            raise EngineError(f"the vLLM server at {client.url} cannot load adapters while running: start it "
                              "with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True, or name the adapter at start with "
                              "--lora-modules NAME=PATH")
        if resp.status_code == 404:              # vLLM's own "not found": the adapter path
            raise EngineError(f"the vLLM server could not load adapter {a.display_name!r} from {a.path} "
                              f"({error_text(resp)}); the path is read by the server, so it must exist on the "
                              "server's machine")
        self._loras[name] = a.path
        self._loaded_by_us.append(name)
        return name

    def close(self) -> None:
        client = self._client
        for name in self._loaded_by_us:            # leave the server as we found it
            try:
                client.request("POST", "/v1/unload_lora_adapter", {"lora_name": name})
            except EngineError as exc:
                log.warning("could not unload %s from vLLM: %s", name, exc)
        self._loaded_by_us = []
        super().close()

    def _request(self, messages, params: SamplingParams, plan: str):
        body = {"model": plan, "messages": chat_messages(messages), "stream": True,
                "stream_options": {"include_usage": True}, **openai_sampling(params),
                # vLLM's extra sampling parameters (accepted beside the OpenAI ones)
                "min_p": float(params.min_p), "repetition_penalty": float(params.repeat_penalty)}
        if params.top_k > 0:
            body["top_k"] = int(params.top_k)
        return "/v1/chat/completions", body, OpenAIEvents()


def _route_missing(resp) -> bool:
    """A 404 from the web framework (no such endpoint), not vLLM's JSON error about the adapter."""
    try:
        body = resp.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and (body.get("object") == "error" or "message" in body))


def _models(client: RemoteClient) -> list[dict]:
    """The models /v1/models lists, each an object with an id (EngineError for a list of another shape)."""
    answer = client.get_json("/v1/models")
    models = (answer.get("data") if isinstance(answer, dict) else None) or []
    if not (isinstance(models, list) and all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in models)):
        raise EngineError(f"the vLLM server at {client.url} lists its models (/v1/models) in a shape LoRA Deck "
                          f"cannot read: {str(models)[:200]}")
    return models


__all__ = ["CAPABILITIES", "VllmEngine"]
