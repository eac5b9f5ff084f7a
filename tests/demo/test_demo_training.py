"""The demo training script: reproducible bytes for a fixed seed (checked on a cheap slice of the
pipeline: data, tokenizer, a few optimizer steps, every writer), and GGUF writers that llama.cpp
reads back to the same numbers torch computes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging" / "demo"))

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("sentencepiece")

import demo_data  # noqa: E402
import demo_formats  # noqa: E402
import demo_gguf  # noqa: E402
import demo_tokenizer  # noqa: E402
import demo_training as tr  # noqa: E402


@pytest.fixture
def torch_settings_restored():
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.set_flush_denormal(False)  # the default; make_reproducible turns it on


@pytest.fixture(scope="module")
def tokenizer():
    return demo_tokenizer.ChatTokenizer(
        demo_tokenizer.train_sentencepiece(demo_data.tokenizer_corpus(), tr.ModelShape().vocab_size))


def _quiet(*_):
    pass


def _cheap_build(out: Path) -> dict[str, bytes]:
    """The whole pipeline with a handful of steps: returns every file's bytes."""
    tr.make_reproducible(7, 2)
    tok_bytes = demo_tokenizer.train_sentencepiece(demo_data.tokenizer_corpus(), 768)
    tok = demo_tokenizer.ChatTokenizer(tok_bytes)
    (out / "tokenizer.model").write_bytes(tok_bytes)
    base = tr.new_base_model(tr.ModelShape())
    losses = tr.train(base, tok, tr.TrainSettings(steps=3, batch_size=4, request_rate=0.3), 7, log=_quiet)
    (out / "losses.txt").write_text(repr(losses))
    state = {k: v.detach().numpy() for k, v in base.state_dict().items() if k != "lm_head.weight"}
    demo_gguf.write_model_gguf(out / "model.gguf", state, base.config, tok, name="t", description="t",
                               license_id="apache-2.0", chat_template=demo_tokenizer.CHAT_TEMPLATE,
                               context_length=512)
    settings = tr.TrainSettings(steps=8, batch_size=4, learning_rate=1e-2, warmup=1)   # every adapter gets a turn
    model = tr.train_adapters(base, tok, [("shout", 4, 8.0), ("pirate", 4, 4.0)], settings, 8, log=_quiet)
    common = {"base_model": "x/y", "title": "t", "description": "d"}
    demo_formats.save_peft(model, "shout", out / "peft", **common)
    pirate = demo_formats.lora_pairs(model, "pirate")
    demo_formats.save_kohya(pirate, 4.0, out / "kohya.safetensors", **common)
    demo_formats.save_ludwig(model, "pirate", out / "ludwig", rank=4, alpha=4.0, steps=3, learning_rate=1e-2,
                             batch_size=4, **common)
    demo_gguf.write_lora_gguf(out / "pirate.gguf", pirate, 4.0, base.config, name="p")
    return {str(f.relative_to(out)): f.read_bytes() for f in sorted(out.rglob("*")) if f.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path, torch_settings_restored):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = _cheap_build(tmp_path / "a"), _cheap_build(tmp_path / "b")
    assert sorted(first) == sorted(second)
    assert "peft/adapter_model.safetensors" in first and "ludwig/model_weights/adapter_config.json" in first
    for name in first:
        assert first[name] == second[name], name
    # the adapters did train (PEFT starts B at zero)
    from safetensors.numpy import load

    ups = [v for k, v in load(first["kohya.safetensors"]).items() if k.endswith(".lora_up.weight")]
    assert ups and all(np.abs(u).max() > 0 for u in ups)


def test_conversations_and_tokenizer_are_reproducible(tokenizer):
    import random

    pairs = demo_data.qa_pairs()
    a = [demo_data.sample_conversation(random.Random(3), pairs, request_rate=0.5) for _ in range(3)]
    b = [demo_data.sample_conversation(random.Random(3), pairs, request_rate=0.5) for _ in range(3)]
    assert a == b
    again = demo_tokenizer.train_sentencepiece(demo_data.tokenizer_corpus(), tr.ModelShape().vocab_size)
    assert again == tokenizer.model_bytes


def test_styles_compose_in_a_fixed_order():
    answer = "The capital of France is Paris."
    assert demo_data.apply_styles(answer, ("shout", "pirate")) == "ARR! THE CAPITAL O' FRANCE BE PARIS, MATEY!"
    assert demo_data.apply_styles(answer, ("reverse",)) == "Paris is France of capital The."


def test_loss_mask_covers_answers_and_end_of_turn(tokenizer):
    ids, learn = tokenizer.encode_chat([{"role": "user", "content": "Hi!"},
                                        {"role": "assistant", "content": "Hello!"}])
    learned = [i for i, m in zip(ids, learn) if m]
    assert tokenizer.decode(learned) == "Hello!"
    assert learned[-1] == demo_tokenizer.IM_END_ID


# --- the GGUF writers against torch ------------------------------------------------------------

def _random_model(seed: int):
    torch.manual_seed(seed)
    model = tr.new_base_model(tr.ModelShape(vocab_size=768, hidden_size=64, intermediate_size=96, layers=2,
                                            heads=4, context_length=128))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.3 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
            p.copy_(p.half().float())  # what the F16 GGUF will hold
    return model.eval()


def _llama_logits(path: Path, ids: list[int], lora: Path | None = None, strength: float = 1.0) -> np.ndarray:
    import ctypes

    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=128, logits_all=True, n_threads=2, verbose=False)
    try:
        if lora is not None:
            adapter = llama_cpp.llama_adapter_lora_init(llm.model, str(lora).encode())
            assert adapter, "llama.cpp rejected the LoRA"
            arr = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
            llama_cpp.llama_set_adapters_lora(llm.ctx, arr, 1, (ctypes.c_float * 1)(strength))
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


def test_model_gguf_computes_what_torch_computes(tmp_path, tokenizer):
    pytest.importorskip("llama_cpp")
    model = _random_model(11)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    path = tmp_path / "m.gguf"
    demo_gguf.write_model_gguf(path, state, model.config, tokenizer, name="t", description="t",
                               license_id="apache-2.0", chat_template=demo_tokenizer.CHAT_TEMPLATE,
                               context_length=128)
    ids, _ = tokenizer.encode_chat([{"role": "user", "content": "What is the capital of France?"}], True)
    with torch.no_grad():
        expected = model(input_ids=torch.tensor([ids])).logits[0].numpy()
    got = _llama_logits(path, ids)
    assert np.abs(got - expected).max() < 2e-2 * np.abs(expected).max()
    assert (got.argmax(-1) == expected.argmax(-1)).mean() > 0.95


def test_lora_gguf_applies_the_peft_update(tmp_path, tokenizer):
    pytest.importorskip("llama_cpp")
    model = _random_model(12)
    state = {k: v.detach().numpy() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    base_path, lora_path = tmp_path / "m.gguf", tmp_path / "l.gguf"
    demo_gguf.write_model_gguf(base_path, state, model.config, tokenizer, name="t", description="t",
                               license_id="apache-2.0", chat_template=demo_tokenizer.CHAT_TEMPLATE,
                               context_length=128)
    rng = np.random.default_rng(0)
    rank, alpha, strength = 4, 8.0, 0.5
    pairs = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and name.startswith("model.layers."):
            out_f, in_f = module.weight.shape
            a = (0.3 * rng.standard_normal((rank, in_f))).astype(np.float16).astype(np.float32)
            b = (0.3 * rng.standard_normal((out_f, rank))).astype(np.float16).astype(np.float32)
            pairs[name] = (a, b)
    demo_gguf.write_lora_gguf(lora_path, pairs, alpha, model.config, name="l")
    with torch.no_grad():
        for name, (a, b) in pairs.items():
            model.get_submodule(name).weight += torch.from_numpy(strength * alpha / rank * (b @ a))
    ids, _ = tokenizer.encode_chat([{"role": "user", "content": "Hello!"}], True)
    with torch.no_grad():
        expected = model(input_ids=torch.tensor([ids])).logits[0].numpy()
    got = _llama_logits(base_path, ids, lora_path, strength)
    assert np.abs(got - expected).max() < 2e-2 * np.abs(expected).max()
