"""What the three remote engines share: connecting, the mix bookkeeping, and turning an
OpenAI-style chat stream into `TokenChunk`s.

A remote engine's "model path" is the server URL. The model itself lives on the server; LoRA Deck
only chooses, per request, which of the server's adapters to apply and how strongly, within what
that server supports (see each engine's `capabilities` and module docstring).
"""
from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ...chat.template import THINK_CLOSE, THINK_OPEN
from ...errors import EngineError
from ...jobs import JobContext
from ...kinds import is_count, is_number
from ..base import ActiveAdapter, ChatMessage, EngineCapabilities, SamplingParams, TokenChunk
from .http import CANCELLED, RemoteClient, is_url, normalize_url, server_name

_FINISH = {"stop": "stop", "eos_token": "stop", "stop_sequence": "stop", "length": "length"}


class RemoteEngine:
    """Base class: subclasses set `engine_id`, `kind`, `capabilities` and implement `_describe`,
    `_map_mix` and `_request`."""

    engine_id = "remote"
    kind = "remote server"
    capabilities = EngineCapabilities()
    strength_note = ""                         # why the strength range is what it is (for messages)

    def __init__(self, api_key: str | None = None, timeout: float = 30.0, **_local_options):
        # _local_options: n_ctx, n_threads... that the app passes to every engine; a server has its own.
        self.api_key = api_key
        self.timeout = float(timeout)
        self._client: RemoteClient | None = None
        self._mix: list[ActiveAdapter] = []
        self._plan = None                      # what _map_mix made of the mix (engine specific)
        self.info: dict = {}

    # ------------------------------------------------------------------ connection
    def load(self, model_path: str | Path, ctx: JobContext | None = None) -> dict:
        """Connect to the server at `model_path` (a URL) and describe the model it serves."""
        url = str(model_path)
        if not is_url(url) and (Path(url).suffix.lower() == ".gguf" or Path(url).exists()):
            raise EngineError(f"the {self.engine_id} engine talks to a running server: give its address "
                              f"(e.g. http://127.0.0.1:8080), not a model file ({url})")
        self.close()
        client = RemoteClient(normalize_url(url), kind=self.kind, api_key=self.api_key, timeout=self.timeout)
        try:
            described = _by_kind(self._describe(client))
        except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:   # answers of another shape
            client.close()
            raise EngineError(f"the {client.server} at {client.url} describes its model in a way LoRA Deck cannot "
                              f"read ({type(exc).__name__}: {exc}); is it a {client.server}?") from None
        except BaseException:
            client.close()
            raise
        self._client = client
        self.info = {"path": client.url, "engine": self.engine_id, "architecture": None, "n_ctx": None,
                     "n_layers": None, "note": "", "name": client.url, "remote": True, **described}
        return dict(self.info)

    @property
    def loaded(self) -> bool:
        return self._client is not None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._mix, self._plan = [], None

    def _require(self) -> RemoteClient:
        if self._client is None:
            raise EngineError(f"not connected; load the {server_name(self.kind)}'s address first")
        return self._client

    # ------------------------------------------------------------------ adapters
    def set_adapters(self, adapters: Sequence[ActiveAdapter], ctx: JobContext | None = None) -> None:
        """Make `adapters` the whole mix for the next requests. On error the previous mix stays."""
        client = self._require()
        lo, hi = self.capabilities.strength_range
        for a in adapters:
            if a.layer_scales:
                raise EngineError(f"{a.display_name}: per-layer strengths are not possible on a "
                                  f"{server_name(self.kind)} (it applies one strength per adapter); use a local "
                                  "engine for them")
            if a.strength != 0.0 and not lo <= a.strength <= hi:
                why = f"{self.strength_note}: " if self.strength_note else ""
                raise EngineError(f"strength {a.strength:g} of {a.display_name} is outside what a "
                                  f"{server_name(self.kind)} can apply ({why}{self._strength_text()})")
        self._plan = self._map_mix(client, [a for a in adapters])
        self._mix = list(adapters)

    def _strength_text(self) -> str:
        lo, hi = self.capabilities.strength_range
        return f"strength {lo:g}, or 0 for off" if lo == hi else f"[{lo:g}, {hi:g}]"

    def adapters(self) -> list[dict]:
        """The current mix as the server will run it (for the GUI and the chat CLI)."""
        return [{"name": a.display_name, "path": a.path, "strength": a.strength, "layer_scales": None,
                 "gguf": None, "notes": [], "running": "remote" if a.strength else "off"} for a in self._mix]

    # ------------------------------------------------------------------ generation
    def generate(self, messages: Sequence[ChatMessage], params: SamplingParams | None = None,
                 ctx: JobContext | None = None) -> Iterator[TokenChunk]:
        client = self._require()
        params = params or SamplingParams()
        if self._plan is None:
            self._plan = self._map_mix(client, [])
        path, body, parse = self._request(list(messages), params, self._plan)
        return _stream_chunks(client.sse_events(path, body, ctx or JobContext()), parse, client.server)

    # subclass hooks --------------------------------------------------------------
    def _describe(self, client: RemoteClient) -> dict:
        raise NotImplementedError

    def _map_mix(self, client: RemoteClient, adapters: list[ActiveAdapter]):
        raise NotImplementedError

    def _request(self, messages: list[ChatMessage], params: SamplingParams, plan) -> tuple[str, dict, object]:
        raise NotImplementedError


def chat_messages(messages: Sequence[ChatMessage]) -> list[dict]:
    return [{"role": m.role, "content": m.content} for m in messages]


def openai_sampling(params: SamplingParams) -> dict:
    """The OpenAI chat fields llama-server and vLLM accept; temperature 0 is greedy."""
    body = {"max_tokens": int(params.max_tokens), "temperature": float(max(params.temperature, 0.0)),
            "top_p": float(params.top_p)}
    if params.seed is not None and params.seed >= 0:
        body["seed"] = int(params.seed)
    if params.thinking is not None:                # both llama-server and vLLM hand these to the template
        body["chat_template_kwargs"] = {"enable_thinking": bool(params.thinking)}
    return body


class OpenAIEvents:
    """Reads one streamed chat completion: called with each `chat.completion.chunk`, returns (text,
    finish_reason, stats). Reasoning a server sends apart from the answer (llama-server's and
    DeepSeek's `reasoning_content`, recent vLLM's `reasoning`) is put back into the text between
    `<think>` tags, as a local thinking model writes it: the app folds it above the answer and keeps it
    with the conversation. Read as `content` alone, a thinking model's reply showed nothing at all
    until the answer began, and its reasoning was lost."""

    def __init__(self, echoed: str = ""):
        """`echoed`: the assistant's text a request ends with, which llama-server's reply to it repeats
        before the continuation (left out here; a reply that does not start with it is kept whole)."""
        self._thinking: bool | None = None       # None: no reasoning yet; False: the answer has begun
        self._echoed: str | None = echoed or None
        self._held = ""

    def __call__(self, event: dict) -> tuple[str, str | None, dict]:
        text, finish, stats = parse_openai_event(event, self)
        if self._echoed is None:
            return text, finish, stats
        self._held += text
        if len(self._held) < len(self._echoed) and self._echoed.startswith(self._held) and not finish:
            return "", finish, stats                 # still the repeated text (or too little to tell)
        echoed, held, self._echoed, self._held = self._echoed, self._held, None, ""
        if echoed.startswith(held):                  # it ended within the repeated text
            return "", finish, stats
        return (held[len(echoed):] if held.startswith(echoed) else held), finish, stats

    def text(self, delta: dict) -> str:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        content = delta.get("content") or ""
        reasoning = reasoning if isinstance(reasoning, str) else ""
        content = content if isinstance(content, str) else ""
        out = ""
        if reasoning and self._thinking is None:
            out, self._thinking = THINK_OPEN, True
        out += reasoning
        if content and self._thinking:
            out += THINK_CLOSE + "\n\n"
        if content:
            self._thinking = False
        return out + content


def parse_openai_event(event: dict, reader: OpenAIEvents | None = None) -> tuple[str, str | None, dict]:
    """(text, finish_reason, stats) from one `chat.completion.chunk`; `reader`: the stream's reader,
    which keeps reasoning sent apart (without one, only `content` is read)."""
    stats: dict = {}
    usage = event.get("usage")
    if isinstance(usage, dict):
        stats["prompt_tokens"] = usage.get("prompt_tokens")
        stats["completion_tokens"] = usage.get("completion_tokens")
    timings = event.get("timings")            # llama-server's own speed report (last chunk)
    if isinstance(timings, dict):
        # prompt_n counts only the tokens it evaluated; cache_n those its prompt cache already held.
        read, cached = timings.get("prompt_n"), timings.get("cache_n")
        cached = cached if isinstance(cached, int) and cached >= 0 else None
        if isinstance(read, int) and read >= 0:
            stats["prompt_tokens"] = read + (cached or 0)
            stats["prompt_cached"] = cached
        if _amount(timings.get("prompt_ms")):
            stats["prompt_seconds"] = timings["prompt_ms"] / 1000.0
        if _amount(timings.get("predicted_per_second")) and timings["predicted_per_second"] > 0:
            stats["tokens_per_second"] = float(timings["predicted_per_second"])
    text, finish = "", None
    choices = event.get("choices")
    for choice in choices if isinstance(choices, list) else []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        delta = delta if isinstance(delta, dict) else {}
        content = delta.get("content")
        text += reader.text(delta) if reader is not None else (content if isinstance(content, str) else "")
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        finish = reason if isinstance(reason, str) and reason else finish
    return text, finish, stats


def _by_kind(described: dict) -> dict:
    """What a server says of its model, its sizes kept only when they are counts (the app computes
    with them: a context of "big" would fail there, far from the answer that said it)."""
    return {**described, **{k: described[k] if _count(described.get(k)) and described[k] > 0 else None
                            for k in ("n_ctx", "n_params") if k in described}}


def _count(v) -> bool:
    return is_count(v) and v >= 0


def _amount(v) -> bool:
    return is_number(v) and v >= 0


def _no(_v) -> bool:
    return False


_STAT_KINDS = {"prompt_tokens": _count, "completion_tokens": _count, "prompt_cached": _count,
               "prompt_seconds": _amount, "tokens_per_second": _amount}


def _stream_chunks(events, parse, server: str = "server") -> Iterator[TokenChunk]:
    """TokenChunks from parsed server events; always ends with one `finished` chunk. An event is data
    from the network: one that is not an object, or that the parser cannot read, is an EngineError
    naming the server; a statistic of another kind (a count that is text, say) is left out."""
    n, finish = 0, None
    stats: dict = {}
    t0 = time.perf_counter()
    t_first = t_last = None
    try:
        for event in events:
            if event is CANCELLED:
                finish = "cancelled"
                break
            if not isinstance(event, dict):
                raise EngineError(f"the {server} sent a stream event that is not an object: {str(event)[:100]!r}")
            try:
                text, reason, more = parse(event)
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                raise EngineError(f"the {server} sent a stream event LoRA Deck cannot read ({type(exc).__name__}: "
                                  f"{exc})") from None
            text = text if isinstance(text, str) else ""
            reason = reason if isinstance(reason, str) else None
            stats.update({k: v for k, v in more.items() if _STAT_KINDS.get(k, _no)(v)})
            if text:
                n += 1
                t_last = time.perf_counter()
                if t_first is None:
                    t_first = t_last
                    stats.setdefault("prompt_seconds", t_first - t0)
                tps = (n - 1) / (t_last - t_first) if n > 1 and t_last > t_first else None
                yield TokenChunk(text, None, 1, False, None, stats.get("prompt_tokens"), n, tps,
                                 stats.get("prompt_seconds"))
            if reason:
                finish = _FINISH.get(reason, "stop")
    finally:
        events.close()                           # closes the HTTP stream (cancel, error or done)
    tps = stats.get("tokens_per_second")
    if tps is None and n > 1 and t_last and t_first and t_last > t_first:
        tps = (n - 1) / (t_last - t_first)
    yield TokenChunk("", None, 0, True, finish or "stop", stats.get("prompt_tokens"),
                     int(stats.get("completion_tokens") or n), tps, stats.get("prompt_seconds"),
                     stats.get("prompt_cached"))


__all__ = ["OpenAIEvents", "RemoteEngine", "chat_messages", "openai_sampling", "parse_openai_event"]
