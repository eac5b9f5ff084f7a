"""The one small interface every inference engine implements, and the plain data it speaks.

An engine is a single-threaded object: the desktop app drives one from its own thread, the CLI from
the main thread. Only `JobContext.cancel()` may be called from elsewhere (it sets a flag the engine
checks at every token).

    engine.load(model_path, ctx)                 -> dict describing the model (see `ModelInfo keys`)
    engine.set_adapters([ActiveAdapter, ...])    the whole mix; takes effect before the next token
    engine.generate(messages, params, ctx)       -> iterator of TokenChunk (streams; stops on cancel)
    engine.close()

`load()` returns a plain dict so the GUI can pass it around and persist it. Keys every engine fills:
``path``, ``architecture``, ``n_ctx``, ``n_layers``, ``note`` (user-facing remark or ""), ``engine``.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import InitVar, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..jobs import JobContext

STRENGTH_RANGE = (-2.0, 2.0)


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine can do, so the GUI shows only controls that work."""

    hot_switch: bool = False           # change adapters/strengths without reloading the model
    multi_adapter: bool = False        # several adapters active at once
    negative_strength: bool = False    # strengths below 0 (subtract an adapter)
    per_layer_strength: bool = False   # a strength factor per layer range
    merge: bool = False                # can bake adapters into the model weights
    gpu_offload: bool = False          # this build can put layers on a GPU
    kv_snapshots: bool = False         # keeps KV caches of recent mixes and can pre-warm a conversation
    continue_answer: bool = False      # a conversation ending with the assistant's text goes on with it
    strength_range: tuple[float, float] = STRENGTH_RANGE

    @property
    def per_layer(self) -> bool:       # the short name the GUI asks for
        return self.per_layer_strength


LayerScales = tuple[tuple[int, int, float], ...]


@dataclass(frozen=True)
class ActiveAdapter:
    """One adapter of the mix: a path (file or folder, any supported format), its strength, and
    optional per-layer factors ``((first_layer, last_layer, factor), ...)`` applied on top of the
    strength (layers in no range keep factor 1; 0 is the layer nearest the input).

    ``scale=`` is accepted as another name for ``strength``.
    """

    path: str
    strength: float = 1.0
    layer_scales: LayerScales | None = None
    name: str | None = None            # what the user calls it (default: file or folder name)
    scale: InitVar[float | None] = None

    def __post_init__(self, scale: float | None) -> None:
        if scale is not None:
            object.__setattr__(self, "strength", scale)
        object.__setattr__(self, "path", str(self.path))
        object.__setattr__(self, "strength", float(self.strength))
        if not math.isfinite(self.strength):
            raise ValueError(f"strength of {self.path} is not a number: {self.strength}")
        ranges = normalize_layer_scales(self.layer_scales)
        object.__setattr__(self, "layer_scales", ranges or None)

    @property
    def display_name(self) -> str:
        return self.name or adapter_display_name(self.path)


# `scale` reads back the strength (the init-only field of that name would otherwise read None).
ActiveAdapter.scale = property(lambda self: self.strength)  # type: ignore[assignment]


def adapter_display_name(path: str | Path) -> str:
    """`/x/style-lora.gguf` → `style-lora`; a folder → its name."""
    p = Path(path)
    return p.stem if p.suffix.lower() in (".gguf", ".safetensors", ".bin", ".zip") else p.name


def normalize_layer_scales(ranges) -> LayerScales:
    """Validate per-layer ranges into a hashable tuple; factor-1 ranges are dropped (they change nothing)."""
    if not ranges:
        return ()
    out = []
    for item in ranges:
        try:
            first, last, factor = item
            first, last, factor = int(first), int(last), float(factor)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a per-layer strength must be (first_layer, last_layer, factor), got {item!r}") from exc
        if first < 0 or last < first:
            raise ValueError(f"bad layer range {first}..{last}")
        if not math.isfinite(factor):
            raise ValueError(f"per-layer factor is not a number: {factor}")
        if factor != 1.0:
            out.append((first, last, factor))
    return tuple(out)


def layer_factor(ranges: LayerScales | None, layer: int | None) -> float:
    """The factor for one layer: the last range that covers it wins; 1 outside every range."""
    factor = 1.0
    if ranges and layer is not None:
        for first, last, f in ranges:
            if first <= layer <= last:
                factor = f
    return factor


@dataclass(frozen=True)
class ChatMessage:
    role: str                          # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 0.7           # 0 = greedy (deterministic)
    top_p: float = 0.95
    top_k: int = 40                    # 0 = off
    repeat_penalty: float = 1.1        # 1 = off
    seed: int = -1                     # -1 = a new random seed each time
    min_p: float = 0.05
    # A thinking model whose template has a switch for it (Qwen3's `enable_thinking`): False answers
    # without reasoning first; None leaves it to the template (models without one ignore it).
    thinking: bool | None = None


@dataclass(frozen=True)
class TokenChunk:
    """One step of a streamed reply. The last chunk has ``finished=True`` and a ``finish_reason``
    ("stop": the model ended its turn, "length": max_tokens or the context is full, "cancelled")."""

    text: str                          # new text (may be "" while a multi-byte char or stop word is pending)
    token_id: int | None = None        # the sampled token (None on the final chunk)
    n_tokens: int = 1                  # tokens this chunk stands for (0 on the final chunk)
    finished: bool = False
    finish_reason: str | None = None
    prompt_tokens: int | None = None   # tokens in the prompt
    completion_tokens: int = 0         # tokens generated so far
    tokens_per_second: float | None = None   # decode speed so far (None until two tokens)
    prompt_seconds: float | None = None      # time to evaluate the prompt (prefill)
    prompt_cached: int | None = None         # prompt tokens taken from a KV cache or snapshot, not evaluated


@runtime_checkable
class Engine(Protocol):
    capabilities: EngineCapabilities

    def load(self, model_path: str | Path, ctx: JobContext | None = None) -> dict: ...

    def set_adapters(self, adapters: Sequence[ActiveAdapter], ctx: JobContext | None = None) -> None: ...

    def generate(self, messages: Sequence[ChatMessage], params: SamplingParams,
                 ctx: JobContext | None = None) -> Iterator[TokenChunk]: ...

    def close(self) -> None: ...


def run_to_text(engine, messages, params=None, ctx=None) -> str:
    """The whole reply of any engine as one string (tests)."""
    return "".join(c.text for c in engine.generate(messages, params, ctx))


__all__ = ["STRENGTH_RANGE", "ActiveAdapter", "ChatMessage", "Engine", "EngineCapabilities", "LayerScales",
           "SamplingParams", "TokenChunk", "adapter_display_name", "layer_factor", "normalize_layer_scales",
           "run_to_text"]
