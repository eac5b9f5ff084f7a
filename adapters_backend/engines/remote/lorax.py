"""Chat through a running LoRAX server, with adapters chosen per request and merged for a mix.

What LoRAX can do (predibase/lorax docs/guides/openai_api.md, docs/guides/merging_adapters.md,
docs/reference/openapi.json; router/src/lib.rs, server/lorax_server/utils/adapter.py and
utils/merges/strategies.py at a7394ba):
- Any adapter per request, loaded on first use: a Hub id, or a path on the server's machine with
  `adapter_source: "local"`. Chat requests (`POST /v1/chat/completions`) name it in `model`; `""`
  or the base model id means no adapter. The server applies the chat template.
- Several adapters are **merged** per request, only on the native `POST /generate_stream`
  (`{"inputs", "parameters": {"merged_adapters": {"ids", "weights", "merge_strategy", "density",
  "majority_sign_method"}}}`). That endpoint takes a finished prompt, so LoRA Deck renders the chat
  template itself: pass `chat_template=` or let it read the base model's `tokenizer_config.json`
  from the Hugging Face Hub (the id from `GET /info`).
- `weights` are merge weights, not strengths: LoRAX's linear merge sums each LoRA factor (A and B)
  separately, weighted, so the result only approximates Σ wᵢ·ΔWᵢ (cross terms, and a weight w alone
  would act like w²); ties/dare prune as well. Merged adapters must have the same rank.
- A single adapter always runs at full scale: LoRAX does not weight an adapter it does not merge.
  So one adapter takes strength 1 (or 0 = off); two or more take positive weights; negative
  strengths and per-layer strengths are refused with a message saying why.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import EngineError
from ...json_input import read_json_object
from ..base import ActiveAdapter, EngineCapabilities, SamplingParams
from .common import OpenAIEvents, RemoteEngine, chat_messages
from .http import RemoteClient

CAPABILITIES = EngineCapabilities(hot_switch=True, multi_adapter=True, negative_strength=False,
                                  per_layer_strength=False, merge=False, gpu_offload=False,
                                  strength_range=(0.0, 2.0))
MERGE_STRATEGIES = ("linear", "ties", "dare_linear", "dare_ties")


def adapter_ref(a: ActiveAdapter) -> tuple[str, str | None]:
    """(adapter id, adapter_source): a filesystem path → "local" (read by the server), else a Hub id."""
    p = a.path
    if p.startswith(("/", "~", "./", "../")) or Path(p).expanduser().exists() or (len(p) > 1 and p[1] == ":"):
        return str(Path(p).expanduser()), "local"
    return p, None


class LoraxEngine(RemoteEngine):
    engine_id = "lorax"
    kind = "LoRAX"
    capabilities = CAPABILITIES
    strength_note = "LoRAX weights adapters only when it merges several, and only positively"

    def __init__(self, api_key: str | None = None, timeout: float = 60.0, merge_strategy: str = "linear",
                 density: float | None = None, majority_sign_method: str | None = None,
                 chat_template: str | None = None, bos_token: str = "", eos_token: str = "",
                 fetch_template: bool = True, **local_options):
        super().__init__(api_key=api_key, timeout=timeout, **local_options)
        if merge_strategy not in MERGE_STRATEGIES:
            raise EngineError(f"unknown LoRAX merge strategy {merge_strategy!r}; one of {', '.join(MERGE_STRATEGIES)}")
        if merge_strategy != "linear" and density is None:
            raise EngineError(f"the LoRAX merge strategy {merge_strategy} needs a density (fraction of weights kept)")
        self.merge_strategy, self.density, self.majority_sign_method = merge_strategy, density, majority_sign_method
        self.fetch_template = bool(fetch_template)
        self._template_args = (chat_template, bos_token, eos_token)
        self._template = None
        self._model_id: str | None = None

    def _describe(self, client: RemoteClient) -> dict:
        info = client.get_json("/info", ok_404=True)
        if not isinstance(info, dict) or "model_id" not in info:
            raise EngineError(f"{client.url} does not answer GET /info like a LoRAX server")
        self._model_id = str(info["model_id"])
        return {"name": self._model_id, "n_ctx": info.get("max_total_tokens"), "version": info.get("version"),
                "note": "LoRAX: one adapter per request at full strength, or several merged with weights "
                        f"({self.merge_strategy} merge; weights are merge weights, not exact strengths)."}

    def _map_mix(self, client: RemoteClient, adapters: list[ActiveAdapter]) -> dict:
        active = [a for a in adapters if a.strength != 0.0]
        if not active:
            return {"kind": "base"}
        refs = [adapter_ref(a) for a in active]
        if len(active) == 1:
            if active[0].strength != 1.0:
                raise EngineError(f"LoRAX cannot weaken or strengthen a single adapter: {active[0].display_name} "
                                  f"runs at strength 1 (or 0 for off), not {active[0].strength:g}. LoRAX "
                                  "applies weights only when it merges two or more adapters")
            return {"kind": "single", "id": refs[0][0], "source": refs[0][1]}
        sources = {src for _id, src in refs}
        if len(sources) > 1:
            raise EngineError("LoRAX merges adapters from one source per request: these mix Hub ids and local "
                              "paths (" + ", ".join(i for i, _s in refs) + ")")
        return {"kind": "merge", "ids": [i for i, _s in refs], "weights": [a.strength for a in active],
                "source": sources.pop()}

    def _request(self, messages, params: SamplingParams, plan: dict):
        if plan["kind"] != "merge":
            body = {"model": plan.get("id") or "", "messages": chat_messages(messages), "stream": True,
                    "max_tokens": int(params.max_tokens), **_lorax_sampling(params)}
            if plan.get("source"):
                body["adapter_source"] = plan["source"]
            return "/v1/chat/completions", body, OpenAIEvents()
        prompt = self._chat_template().render(messages)
        merged = {"ids": plan["ids"], "weights": plan["weights"], "merge_strategy": self.merge_strategy}
        if self.density is not None:
            merged["density"] = float(self.density)
        if self.majority_sign_method:
            merged["majority_sign_method"] = self.majority_sign_method
        parameters = {"merged_adapters": merged, "max_new_tokens": int(params.max_tokens), "details": True,
                      "return_full_text": False, "stop": list(prompt.stops)[:4], **_lorax_sampling(params)}
        if plan.get("source"):
            parameters["adapter_source"] = plan["source"]
        return "/generate_stream", {"inputs": prompt.text, "parameters": parameters}, parse_native_event

    def _chat_template(self):
        if self._template is None:
            from ...chat.template import ChatTemplate

            template, bos, eos = self._template_args
            if not template and self.fetch_template:
                template, bos, eos = _hub_template(self._model_id, bos, eos)
            if not template:
                raise EngineError("LoRAX merges adapters only on /generate_stream, which takes a finished prompt; "
                                  f"LoRA Deck needs the chat template of {self._model_id} to write it. Give it "
                                  "(chat_template=...) or allow reading it from the Hugging Face Hub")
            self._template = ChatTemplate(template, bos_token=bos, eos_token=eos, source="lorax")
        return self._template


def _lorax_sampling(params: SamplingParams) -> dict:
    """LoRAX validates temperature > 0, 0 < top_p <= 1, top_k > 0: greedy sends none of them."""
    out: dict = {}
    if params.temperature > 0:
        out.update(do_sample=True, temperature=float(params.temperature))
        if 0 < params.top_p <= 1:
            out["top_p"] = float(params.top_p)
        if params.top_k > 0:
            out["top_k"] = int(params.top_k)
    if params.repeat_penalty > 0 and params.repeat_penalty != 1.0:
        out["repetition_penalty"] = float(params.repeat_penalty)
    if params.seed is not None and params.seed >= 0:
        out["seed"] = int(params.seed)
    return out


def parse_native_event(event: dict):
    """One `/generate_stream` StreamResponse: {"token": {"text", "special"}, "details": {...}}."""
    token = event.get("token") if isinstance(event.get("token"), dict) else {}
    text = "" if token.get("special") or not isinstance(token.get("text"), str) else token["text"]
    details = event.get("details") if isinstance(event.get("details"), dict) else {}
    stats = {"prompt_tokens": details.get("prompt_tokens"), "completion_tokens": details.get("generated_tokens")}
    return text, details.get("finish_reason"), stats


def _hub_template(model_id: str | None, bos: str, eos: str):
    """The base model's chat template from its tokenizer_config.json on the Hub (None when unreachable)."""
    if not model_id:
        return None, bos, eos
    try:
        from huggingface_hub import hf_hub_download

        cfg = read_json_object(hf_hub_download(model_id, "tokenizer_config.json"))
    except Exception:  # offline, gated, not a Hub id: the caller explains what to do
        return None, bos, eos

    def tok(v):
        return v.get("content", "") if isinstance(v, dict) else (v or "")

    template = cfg.get("chat_template")
    if isinstance(template, list):              # named templates: take the default one
        template = next((t.get("template") for t in template if isinstance(t, dict) and t.get("name") == "default"),
                        None)
    return template, bos or tok(cfg.get("bos_token")), eos or tok(cfg.get("eos_token"))


__all__ = ["CAPABILITIES", "LoraxEngine", "adapter_ref", "parse_native_event"]
