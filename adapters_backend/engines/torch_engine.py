"""The PyTorch engine: an HF model folder or Hub id run with transformers on CUDA, MPS or the CPU.

Adapters of every format attach through `torch_adapters.AdapterBank` (forward hooks with exact low-rank
factors), so several act at once with their own strengths, negative included, per-layer too, and a
strength change applies at the next token without reloading anything. Generation is a plain
token-by-token loop over the model's KV cache, which is what makes cancellation land within one token
and lets the sampler follow the same parameters as the llama.cpp engine. The prompt is rendered with
the same Jinja formatter as the llama.cpp engine, from the tokenizer's chat template.

The KV cache follows the llama.cpp engine's rules (torch_kv.py): it is keyed by mix, a cache about to
be dropped is kept as a snapshot of its mix, a prompt continues from the longest prefix held under
its own mix, `prewarm()` reads a conversation ahead in chunks, and activated LoRAs act from their
invocation tokens on (alora.py) with the cache before them shared.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import BaseModelError, EngineError, EngineUnavailable
from ..file_identity import source_identity
from ..jobs import JobContext
from ..machine import spare_memory
from ..model_ref import is_hub_id
from . import alora
from .base import (
    STRENGTH_RANGE,
    ActiveAdapter,
    ChatMessage,
    EngineCapabilities,
    SamplingParams,
    TokenChunk,
    layer_factor,
)
from .context_window import context_exceeded
from .kv_snapshots import BASE_KEY, StoreStats, auto_budget, mix_key, resized
from .torch_device import pick_device, pick_dtype
from .torch_device import require_torch as _torch
from .torch_kv import TorchKV
from .torch_loading import (
    PICKLED_MODEL,
    check_memory,
    check_token_ids,
    check_weights_complete,
    device_memory,
    local_weights,
    no_safetensors,
    read_checked_config,
)

PREWARM_CHUNK = 128                    # tokens per pre-warm step (a cancel waits for at most one)

class TorchEngine:
    def __init__(self, device: str | None = None, dtype: str | None = None, n_ctx: int = 4096,
                 quantize: str | None = None, n_threads: int | None = None, kv_snapshot_budget: int | None = None):
        torch = _torch()
        if n_threads:
            torch.set_num_threads(int(n_threads))
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.n_ctx_limit, self.quantize = int(n_ctx), quantize
        self.capabilities = EngineCapabilities(
            hot_switch=True, multi_adapter=True, negative_strength=True, per_layer_strength=True, merge=False,
            gpu_offload=self.device != "cpu", strength_range=STRENGTH_RANGE, kv_snapshots=True,
            continue_answer=True)
        self.model = self.tokenizer = self._bank = self._template = self._base_info = None
        self._mix: list[ActiveAdapter] = []
        self._mix_keys: list[str] = []                       # the bank key of each mix entry
        self._mix_key = BASE_KEY                              # the KV key of the mix
        self._invocations: dict[str, tuple[int, ...]] = {}   # bank key -> aLoRA invocation tokens
        self._kv_budget = kv_snapshot_budget
        self._memory_left: int | None = None                 # device memory the model leaves (spare_memory)
        self._kv = TorchKV(None)
        self._reused = 0
        self._notes: dict[str, list[str]] = {}
        self.info: dict = {}

    # ------------------------------------------------------------------ model
    def load(self, model_path: str | Path, ctx: JobContext | None = None) -> dict:
        torch = _torch()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        ctx = ctx or JobContext()
        local = Path(str(model_path)).expanduser()
        source = str(local) if local.exists() else str(model_path)
        if local.exists() and not (local / "config.json").is_file():
            raise BaseModelError(local, "is not a Hugging Face model folder (no config.json); GGUF files run on the "
                                        "llama.cpp engine")
        elt, dtype_name = self.dtype.itemsize, str(self.dtype).replace("torch.", "")

        def fits(weight_bytes: int, config: dict) -> None:
            if not self.quantize:            # 8/4-bit: smaller than the files; transformers fits them itself
                check_memory(source, weight_bytes, config, self.device, elt, dtype_name)
        folder = source
        if not local.exists() and is_hub_id(source):
            # Fetched here, not by transformers: the size checked first, progress and Cancel (hub/hf_models.py).
            from ..hub.hf_models import download_hf_model
            folder = str(download_hf_model(source, ctx=ctx, check=fits))
        elif local.is_dir():
            fits(*local_weights(local))
        ctx.report(0, 3, "checking config.json against the weights")
        # Weights from safetensors only: transformers would otherwise unpickle a pytorch_model.bin in this
        # process, and LoRA Deck never unpickles a file it did not make (formats/safe_pickle.py). Nor may
        # transformers send the user's Hub token to its conversion Space to open a pull request on someone
        # else's repository, which it does for a repository with pickled weights only.
        os.environ.setdefault("DISABLE_SAFETENSORS_CONVERSION", "1")
        kwargs = {"dtype": self.dtype, "use_safetensors": True}
        if self.quantize:
            kwargs["quantization_config"] = _bnb_config(self.quantize)
            kwargs["device_map"] = self.device
        try:
            config = read_checked_config(source, folder, elt, dtype_name)   # first: the tokenizer reads it too
            tokenizer = AutoTokenizer.from_pretrained(folder)
            ctx.check()
            ctx.report(1, 3, "loading the weights")
            self.close()        # only now: a model refused by the checks above leaves the loaded one as it was
            model, loading = AutoModelForCausalLM.from_pretrained(folder, config=config, output_loading_info=True,
                                                                  **kwargs)
            check_weights_complete(source, loading)
            if not self.quantize:
                model = model.to(self.device)
        except (getattr(torch.cuda, "OutOfMemoryError", MemoryError), MemoryError) as exc:
            raise EngineError(f"not enough {self.device} memory to load {source} ({exc})") from None
        except BaseModelError:
            raise                          # our own checks' words, as they are
        except (OSError, ValueError, KeyError) as exc:
            if no_safetensors(exc):
                raise BaseModelError(source, PICKLED_MODEL) from None
            raise BaseModelError(source, f"transformers cannot load it: {exc}") from None
        model.eval()
        try:      # one token through the model: a config it loads with but cannot run fails here, not at every answer
            with torch.inference_mode():
                model(input_ids=torch.tensor([[0]], device=self.device))
        except (getattr(torch.cuda, "OutOfMemoryError", MemoryError), MemoryError) as exc:
            del model
            raise EngineError(f"not enough {self.device} memory to run {source} ({exc})") from None
        except Exception as exc:
            del model
            raise BaseModelError(source, f"transformers loads it but cannot run it ({type(exc).__name__}: {exc}); "
                                         "its config.json has a value the model cannot work with") from None
        try:          # a failure past this point leaves nothing that looks loaded
            self.model, self.tokenizer = model, tokenizer
            # transformers ≥ 5.2x names the KV cache `cache`; older releases `past_key_values`
            import inspect
            self._cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
            from .torch_adapters import AdapterBank
            self._bank = AdapterBank(model)
            ctx.report(2, 3, "reading the chat template")
            from ..chat.template import template_from_metadata
            meta = {"tokenizer.chat_template": tokenizer.chat_template} if getattr(tokenizer, "chat_template", None) else {}
            self._template = template_from_metadata(meta, bos_token=tokenizer.bos_token or "",
                                                    eos_token=tokenizer.eos_token or "")
            cfg = model.config
            text_cfg = getattr(cfg, "get_text_config", lambda: cfg)()
            self.info = {
                "path": source, "engine": "torch", "architecture": getattr(cfg, "model_type", "?"),
                "name": Path(source).name, "device": self.device, "dtype": dtype_name,
                "n_ctx": min(self.n_ctx_limit, int(getattr(text_cfg, "max_position_embeddings", self.n_ctx_limit))),
                "n_layers": int(getattr(text_cfg, "num_hidden_layers", 0) or 0),
                "n_params": int(sum(p.numel() for p in model.parameters())),
                "chat_template": self._template.source,
                "thinking_switch": self._template.thinking_switch,
                "note": self._template.note,
            }
            self.info["kv_bytes_per_token"] = self.kv_bytes_per_token()
            # Snapshots live where the model does (the GPU's memory on CUDA), beside its weights and a live cache
            used = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
            self._memory_left = spare_memory(used + self.info["n_ctx"] * self.info["kv_bytes_per_token"],
                                       device_memory(self.device))
            self._kv = TorchKV(None)
            self.set_kv_budget(self._kv_budget)
        except BaseException:
            self.close()
            raise
        ctx.report(3, 3, "ready")
        return dict(self.info)

    # ------------------------------------------------------------------ KV snapshots
    def kv_bytes_per_token(self) -> int:
        cfg = self.model.config
        text = getattr(cfg, "get_text_config", lambda: cfg)()
        heads = int(getattr(text, "num_attention_heads", 1) or 1)
        kv_heads = int(getattr(text, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(text, "head_dim", None) or int(getattr(text, "hidden_size", 0)) // heads)
        elt = self.dtype.itemsize
        return int(getattr(text, "num_hidden_layers", 0)) * kv_heads * head_dim * 2 * elt

    def set_kv_budget(self, budget: int | None) -> None:
        """Bytes of KV snapshots to keep (None: automatic, 0: none)."""
        self._kv_budget = budget
        if self.model is None:
            return
        size = (auto_budget(self.kv_bytes_per_token(), self.info["n_ctx"], self._memory_left)
                if budget is None else budget)
        self._kv.store = resized(self._kv.store, int(size))

    def kv_stats(self) -> StoreStats | None:
        return self._kv.store.stats() if self._kv.store is not None else None

    def forget_kv(self, snapshots: bool = False) -> None:
        self._kv.invalidate()
        if snapshots and self._kv.store is not None:
            self._kv.store.clear()

    def _segments(self, tokens: Sequence[int], activate: bool = True) -> list[tuple[int, str]]:
        """The prompt's mix segments (alora.py) and, as a side effect, where each aLoRA acts from."""
        invocations = [self._invocations.get(k, ()) if a.strength else () for a, k in zip(self._mix, self._mix_keys)]
        if not any(invocations):
            self._bank.activation = {}
            return [(0, self._mix_key)]
        plan = alora.plan(tokens, invocations, activate)
        starts: dict[str, int | None] = {k: None for k, inv in zip(self._mix_keys, invocations) if inv}
        for start, active in plan:
            for i in active:
                if invocations[i] and starts[self._mix_keys[i]] is None:
                    starts[self._mix_keys[i]] = start
        self._bank.activation = starts
        return [(start, mix_key([self._mix[i] for i in sorted(active)])) for start, active in plan]

    def _prefill(self, tokens: Sequence[int], ctx: JobContext, chunk: int | None = None,
                 message: str = "reading the prompt", activate: bool = True):
        """Bring the live cache to all of `tokens` but the last under the current mix, evaluating what no
        cache holds in chunks; then the last token. Returns the model output (None: cancelled)."""
        torch = _torch()
        self._check_ids(tokens)
        segments = self._segments(tokens, activate)
        self._reused = done = self._kv.prepare(segments, tokens)
        cache, total = self._kv.cache, len(tokens)
        step = chunk or total
        out = None
        with torch.inference_mode():
            while done < total:
                if ctx.cancelled():
                    return None
                end = min(total, done + step)
                self._bank.offset = done
                kwargs = {self._cache_arg: cache} if cache is not None else {}
                out = self.model(input_ids=torch.tensor([list(tokens[done:end])], device=self.device),
                                 use_cache=True, **kwargs)
                cache, done = out.get(self._cache_arg), end
                self._kv.extended(cache, tokens[:done])
                if total - self._reused > step:
                    ctx.report(done, total, message)
        return out

    def _require(self):
        if self.model is None:
            raise EngineError("no model is loaded")

    def _check_ids(self, tokens: Sequence[int]) -> None:
        check_token_ids(self.info["path"], tokens, self.model.get_input_embeddings().num_embeddings, self.tokenizer)

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def close(self) -> None:
        if self._bank is not None:
            self._bank.close()
        self.model = self.tokenizer = self._bank = self._template = self._base_info = None
        self._mix, self._mix_keys = [], []
        self._invocations.clear()
        self._kv = TorchKV(None)

    # ------------------------------------------------------------------ adapters
    def _base(self):
        if self._base_info is None:
            from ..core.base_model import base_info_from_hf
            shapes = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}
            self._base_info = base_info_from_hf(self.model.config.to_dict(), shapes, name=self.info.get("path"))
        return self._base_info

    def set_adapters(self, adapters: Sequence[ActiveAdapter], ctx: JobContext | None = None) -> None:
        """The whole mix; loads adapters not seen before, frees the ones no longer listed."""
        self._require()
        from ..core.compat import require_compatible
        from ..formats.registry import read_adapter

        lo, hi = self.capabilities.strength_range
        keys, mix_keys = {}, []
        for a in adapters:
            if not lo <= a.strength <= hi:
                raise EngineError(f"strength {a.strength} of {a.display_name} is outside [{lo}, {hi}]")
            p = Path(a.path)
            try:
                key = f"{a.path}|{source_identity(p)}"
            except OSError:
                raise EngineError(f"adapter not found: {a.path}") from None
            mix_keys.append(key)
            if key not in self._bank.adapters:
                if ctx is not None:
                    ctx.check()
                    ctx.report(0, 1, f"loading {a.display_name}")
                adapter = read_adapter(p, base=self._base())
                require_compatible(adapter, self._base(), "torch", label=a.display_name)
                self._notes[a.path] = [*adapter.warnings, *self._bank.add(key, adapter)]
                self._invocations[key] = tuple(adapter.alora_invocation_tokens or ())
            keys[key] = a
        for key in [k for k in self._bank.adapters if k not in keys]:
            self._bank.remove(key)
            self._invocations.pop(key, None)
        self._mix = list(adapters)
        self._mix_keys = mix_keys
        self._mix_key = mix_key(adapters)
        self._bank.set_mix({k: (a.strength, (lambda layer, r=a.layer_scales: layer_factor(r, layer))
                                if a.layer_scales else None) for k, a in keys.items()})

    def adapters(self) -> list[dict]:
        """The current mix as the engine runs it (for `/adapters` and the GUI)."""
        return [{"name": a.display_name, "path": a.path, "strength": a.strength, "layer_scales": a.layer_scales,
                 "notes": self.adapter_notes(a.path), "running": "hooks" if a.strength else "off"}
                for a in self._mix]

    def adapter_notes(self, path: str) -> list[str]:
        return list(self._notes.get(str(path), []))

    # ------------------------------------------------------------------ generation
    def eval_logits(self, tokens: Sequence[int]) -> np.ndarray:
        """Logits (n_tokens, n_vocab) for a token sequence under the current mix, evaluated fresh
        (parity checks)."""
        torch = _torch()
        self._require()
        self._check_ids(tokens)
        self._segments(tokens)                     # where aLoRAs act
        self._bank.offset = 0
        with torch.inference_mode():
            ids = torch.tensor([list(tokens)], dtype=torch.long, device=self.device)
            return self.model(input_ids=ids).logits[0].float().cpu().numpy()

    def next_token_logits(self, tokens: Sequence[int], ctx: JobContext | None = None) -> np.ndarray:
        """Logits after `tokens` under the current mix, evaluated the way a prompt is (reusing the live
        cache or a stored snapshot of this mix); the cache then holds all of `tokens`."""
        self._require()
        tokens = [int(t) for t in tokens]
        out = self._prefill(tokens, ctx or JobContext())
        if out is None:
            raise EngineError("cancelled")
        return out.logits[0, -1].float().cpu().numpy()

    def prewarm(self, messages: Sequence[ChatMessage], ctx: JobContext | None = None,
                 min_reuse: float = 0.0) -> dict:
        """Read the conversation under the current mix into the KV cache ahead of the next prompt, in
        chunks; `ctx.cancel()` stops it within one chunk, keeping what it read (see the llama.cpp engine,
        also for `min_reuse`)."""
        self._require()
        ctx = ctx or JobContext()
        tokens = self.prompt_tokens(messages, add_generation_prompt=False)
        if not tokens or len(tokens) >= self.info["n_ctx"]:
            return {"tokens": len(tokens), "reused": 0, "complete": False}
        if min_reuse > 0 and self._kv.reusable(self._segments(tokens, activate=False), tokens) < min_reuse * len(tokens):
            return {"tokens": len(tokens), "reused": 0, "complete": False}
        complete = self._prefill(tokens, ctx, chunk=PREWARM_CHUNK, message="reading the conversation",
                                 activate=False) is not None
        if complete and not ctx.cancelled():       # cancelled: an answer waits; it needs no snapshot
            self._kv.stash()
        return {"tokens": len(tokens), "reused": self._reused, "complete": complete}

    def prompt_tokens(self, messages: Sequence[ChatMessage], add_generation_prompt: bool = True) -> list[int]:
        self._require()
        rendered = self._template.render(messages, add_generation_prompt)
        return self.tokenize(rendered.text, add_bos=rendered.add_bos)

    def tokenize(self, text: str, add_bos: bool = True) -> list[int]:
        self._require()
        return list(self.tokenizer(text, add_special_tokens=add_bos)["input_ids"])

    def _eos_ids(self) -> set[int]:
        ids = set()
        for src in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(src, int):
                ids.add(src)
            elif isinstance(src, (list, tuple)):
                ids.update(i for i in src if isinstance(i, int))
        return ids

    def generate(self, messages: Sequence[ChatMessage], params: SamplingParams | None = None,
                 ctx: JobContext | None = None) -> Iterator[TokenChunk]:
        self._require()
        params, ctx = params or SamplingParams(), ctx or JobContext()
        rendered = self._template.render(messages, thinking=params.thinking)
        prompt = self.tokenize(rendered.text, add_bos=rendered.add_bos)
        if len(prompt) >= self.info["n_ctx"]:
            raise EngineError(context_exceeded(messages, len(prompt), self.info["n_ctx"]))
        return self._stream(prompt, rendered.stops, params, ctx, strip_leading=not rendered.continues,
                            opened=rendered.opened)

    def _stream(self, prompt: list[int], stops, params: SamplingParams, ctx: JobContext,
                strip_leading: bool = True, opened: str = "") -> Iterator[TokenChunk]:
        torch = _torch()
        from ..chat.reply_text import ReplyText
        from .nonfinite import not_a_number
        from .torch_sampling import sample

        max_new = min(params.max_tokens, self.info["n_ctx"] - len(prompt))    # generate() checked it fits
        seed = params.seed if params.seed is not None and params.seed >= 0 else int(time.time_ns() % 2**31)
        gen = torch.Generator().manual_seed(seed)
        eos, reply, generated, shown = self._eos_ids(), ReplyText(stops, strip_leading=strip_leading, opened=opened), [], ""
        t0 = time.perf_counter()
        t_first = None
        reason = "length"
        out = self._prefill(prompt, ctx)
        prompt_seconds = time.perf_counter() - t0
        cached = self._reused
        fed = list(prompt)
        if out is None:
            yield TokenChunk("", None, 0, finished=True, finish_reason="cancelled", prompt_tokens=len(prompt),
                             prompt_seconds=prompt_seconds, prompt_cached=cached)
            return
        with torch.inference_mode():
            for _ in range(max_new):
                if ctx.cancelled():
                    reason = "cancelled"
                    break
                logits = out.logits[0, -1]
                if not bool(torch.isfinite(logits).all()):
                    self._kv.invalidate()        # what overflowed is never read again
                    raise not_a_number(self._mix, len(generated))
                tok = sample(logits, params, prompt + generated, gen)
                if tok in eos:
                    reason = "stop"
                    break
                generated.append(tok)
                t_first = t_first or time.perf_counter()
                text = self.tokenizer.decode(generated, skip_special_tokens=True)
                new = "" if text.endswith("\ufffd") else text[len(shown):]
                if new:
                    shown = text
                piece = reply.push(new.encode()) if new else ""
                elapsed = time.perf_counter() - t_first
                yield TokenChunk(piece, tok, 1, prompt_tokens=len(prompt), completion_tokens=len(generated),
                                 tokens_per_second=(len(generated) - 1) / elapsed if len(generated) > 1 and elapsed else None,
                                 prompt_seconds=prompt_seconds, prompt_cached=cached)
                if reply.stopped:
                    reason = "stop"
                    break
                self._bank.offset = len(fed)
                out = self.model(input_ids=torch.tensor([[tok]], device=self.device), use_cache=True,
                                 **{self._cache_arg: out.get(self._cache_arg)})
                fed.append(tok)
                self._kv.extended(out.get(self._cache_arg), fed)
        tail = reply.flush()
        yield TokenChunk(tail, None, 0, finished=True, finish_reason=reason, prompt_tokens=len(prompt),
                         completion_tokens=len(generated), prompt_seconds=prompt_seconds, prompt_cached=cached)


def _bnb_config(mode: str):
    try:
        import bitsandbytes  # noqa: F401
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise EngineUnavailable("8-bit and 4-bit loading need the bitsandbytes package (pip install bitsandbytes)") from None
    if mode in ("8bit", "8"):
        return BitsAndBytesConfig(load_in_8bit=True)
    if mode in ("4bit", "4"):
        return BitsAndBytesConfig(load_in_4bit=True)
    raise EngineError(f"unknown quantization {mode!r} (use 8bit or 4bit)")
