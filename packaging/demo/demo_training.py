"""Training loops of the demo: the tiny Llama base model and its LoRA adapters (torch + peft).

Reproducibility: everything random comes from the ``seed`` (Python's ``random.Random`` for the
data, ``torch.manual_seed`` for weight initialisation), torch runs deterministic algorithms on a
fixed number of CPU threads, and there is no data loader worker or other process. The same seed,
thread count and library versions give the same bytes.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from demo_data import qa_pairs, sample_conversation
from demo_tokenizer import IM_END_ID, ChatTokenizer

TARGET_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class ModelShape:
    vocab_size: int = 768
    hidden_size: int = 128
    intermediate_size: int = 384
    layers: int = 4
    heads: int = 4
    context_length: int = 512


@dataclass(frozen=True)
class TrainSettings:
    steps: int
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup: int = 50
    max_tokens: int = 192       # longer chats are cut (the data rarely reaches it)
    request_rate: float = 0.0   # base model: share of turns that ask for styles explicitly
    styles: tuple[str, ...] = ()  # adapters: the styles of every answer


def make_reproducible(seed: int, threads: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    # Denormal floats are very slow on CPUs; flushing them to zero is cheap insurance (and deterministic).
    torch.set_flush_denormal(True)


def new_base_model(shape: ModelShape):
    from demo_tokenizer import BOS_ID
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=shape.vocab_size, hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.heads,
        max_position_embeddings=shape.context_length, rms_norm_eps=1e-5, tie_word_embeddings=True,
        bos_token_id=BOS_ID, eos_token_id=IM_END_ID, pad_token_id=None,
    )
    return LlamaForCausalLM(config)


def _batch(tok: ChatTokenizer, rng: random.Random, pairs, settings: TrainSettings):
    rows = []
    for _ in range(settings.batch_size):
        conv = sample_conversation(rng, pairs, styles=settings.styles, request_rate=settings.request_rate)
        ids, learn = tok.encode_chat(conv)
        rows.append((ids[: settings.max_tokens], learn[: settings.max_tokens]))
    width = max(len(ids) for ids, _ in rows)
    # Right padding: with causal attention no real token ever sees a pad, and pads are not learned.
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    learn = torch.zeros(len(rows), width)
    for i, (row_ids, row_learn) in enumerate(rows):
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        learn[i, : len(row_learn)] = torch.tensor(row_learn, dtype=torch.float32)
    return ids, learn


def answer_loss(model, ids: torch.Tensor, learn: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the tokens the model must learn to write (the answers)."""
    logits = model(input_ids=ids).logits[:, :-1]
    targets, weights = ids[:, 1:], learn[:, 1:]
    losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return (losses * weights.reshape(-1)).sum() / weights.sum().clamp(min=1)


def train(model, tok: ChatTokenizer, settings: TrainSettings, seed: int, log=print,
          choose_styles=None) -> list[float]:
    """AdamW with linear warm-up and cosine decay on freshly sampled batches. Returns the losses.

    ``choose_styles(rng) -> styles``, if given, is called before each step; it may switch the
    model's active adapters, and the step's answers are in the styles it returns."""
    rng = random.Random(seed)
    pairs = qa_pairs()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.learning_rate, betas=(0.9, 0.98), weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < settings.warmup:
            return (step + 1) / settings.warmup
        progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    losses, start = [], time.monotonic()
    for step in range(settings.steps):
        step_settings = settings
        if choose_styles is not None:
            step_settings = dataclasses.replace(settings, styles=tuple(choose_styles(rng)))
        ids, learn = _batch(tok, rng, pairs, step_settings)
        loss = answer_loss(model, ids, learn)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == settings.steps - 1:
            log(f"  step {step:5d}/{settings.steps}  loss {loss.item():.4f}  {time.monotonic() - start:6.1f}s")
    model.eval()
    return losses


def train_adapters(base, tok: ChatTokenizer, specs: list[tuple[str, int, float]], settings: TrainSettings,
                   seed: int, log=print):
    """Train one LoRA per style together, on a copy of ``base``; ``specs`` is [(style, rank, alpha)].

    Each step activates a random set of the adapters (at strength 1) and trains on answers in
    exactly those styles combined, so each adapter works alone and the adapters also add up when
    a user mixes them. Every attention and MLP linear is adapted. Returns the PeftModel, with the
    adapters named after their styles.
    """
    from demo_data import STYLE_ORDER
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)  # LoRA A initialisation
    model = None
    for style, rank, alpha in specs:
        config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(TARGET_MODULES),
                            bias="none", task_type="CAUSAL_LM")
        if model is None:
            model = get_peft_model(copy.deepcopy(base), config, adapter_name=style)
        else:
            model.add_adapter(style, config)
    names = [style for style, _, _ in specs]
    subsets = [tuple(n for n in STYLE_ORDER if n in names and mask >> names.index(n) & 1)
               for mask in range(1, 2 ** len(names))]
    weights = [2.0 if len(s) == 1 else 1.0 for s in subsets]  # mostly one adapter at a time

    model.base_model.set_adapter(names)  # every adapter's parameters go to the optimizer

    def choose(rng: random.Random) -> tuple[str, ...]:
        active = rng.choices(subsets, weights)[0]
        model.base_model.set_adapter(list(active))  # only active adapters get gradients
        return active

    train(model, tok, settings, seed, log=log, choose_styles=choose)
    return model


def use_adapters(model, active: list[str]) -> None:
    """Activate these adapters of a ``train_adapters`` model (for evaluation)."""
    model.base_model.set_adapter(list(active), inference_mode=True)


@torch.no_grad()
def greedy_answer(model, tok: ChatTokenizer, question: str, max_new_tokens: int = 48) -> str:
    """The model's answer at temperature 0 (a quick check with torch; the tests use llama.cpp)."""
    ids, _ = tok.encode_chat([{"role": "user", "content": question}], add_generation_prompt=True)
    x = torch.tensor([ids])
    out: list[int] = []
    for _ in range(max_new_tokens):
        nxt = int(model(input_ids=x).logits[0, -1].argmax())
        if nxt == IM_END_ID:
            break
        out.append(nxt)
        x = torch.cat([x, torch.tensor([[nxt]])], dim=1)
    return tok.decode(out)


@torch.no_grad()
def answer_loss_on(model, tok: ChatTokenizer, styles: tuple[str, ...], seed: int, batches: int = 4) -> float:
    """Mean answer loss on a few freshly sampled batches (a check that training worked)."""
    rng = random.Random(seed + 10_000)
    settings = TrainSettings(steps=0, styles=tuple(styles))
    pairs = qa_pairs()
    losses = [answer_loss(model, *_batch(tok, rng, pairs, settings)).item() for _ in range(batches)]
    return sum(losses) / len(losses)
