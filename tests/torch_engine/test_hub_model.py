"""A Hub model id on the PyTorch engine: downloaded through huggingface_hub into the HF cache (from the
tests' loopback Hub), giving exactly the local folder's logits; a second load works offline from the cache."""
from __future__ import annotations

import numpy as np
import pytest
from fixtures.fake_hub import fake_hub  # noqa: F401  (pytest fixture)

TOKENS = [1, 17, 42, 99, 7]


def test_hub_id_loads_through_the_hf_cache(fake_hub, tiny_models, monkeypatch):  # noqa: F811
    from huggingface_hub import constants

    from adapters_backend.engines.torch_engine import TorchEngine

    folder = tiny_models.hf("llama")
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    fake_hub.add("tiny-org/tiny-llama-hf", files, tags=["safetensors", "llama"], library_name="transformers")
    local = TorchEngine(device="cpu", dtype="float32")
    local.load(folder)
    want = local.eval_logits(TOKENS)
    local.close()

    remote = TorchEngine(device="cpu", dtype="float32")
    info = remote.load("tiny-org/tiny-llama-hf")
    assert info["path"] == "tiny-org/tiny-llama-hf" and info["architecture"] == "llama"
    assert np.array_equal(remote.eval_logits(TOKENS), want)
    remote.close()
    assert any(p.name.startswith("models--tiny-org--tiny-llama-hf") for p in
               __import__("pathlib").Path(constants.HF_HUB_CACHE).iterdir())

    fake_hub.stop()                                   # the Hub is gone: the cache still serves the model
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    again = TorchEngine(device="cpu", dtype="float32")
    again.load("tiny-org/tiny-llama-hf")
    assert np.array_equal(again.eval_logits(TOKENS), want)
    again.close()


def _pickled_copy(folder, dest):
    """The tiny model with its weights as pytorch_model.bin (a tensor pickle) and no safetensors."""
    import shutil

    import torch
    from safetensors.torch import load_file
    shutil.copytree(folder, dest)
    weights = load_file(str(dest / "model.safetensors"))
    (dest / "model.safetensors").unlink()
    torch.save(weights, dest / "pytorch_model.bin")
    return dest


def test_a_model_with_pickled_weights_only_is_refused_unopened(fake_hub, tiny_models, tmp_path, monkeypatch):  # noqa: F811
    """transformers would unpickle pytorch_model.bin in the app's process; LoRA Deck asks for safetensors,
    from a folder and from the Hub alike, and says why."""
    import torch

    from adapters_backend.engines.torch_engine import PICKLED_MODEL, TorchEngine
    from adapters_backend.errors import BackendError

    folder = _pickled_copy(tiny_models.hf("llama"), tmp_path / "pickled")
    fake_hub.add("tiny-org/pickled-llama", {p.name: p.read_bytes() for p in folder.iterdir()},
                 tags=["pytorch", "llama"], library_name="transformers")
    opened = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: opened.append(a) or real_load(*a, **k))
    for source in (folder, "tiny-org/pickled-llama"):
        engine = TorchEngine(device="cpu", dtype="float32")
        with pytest.raises(BackendError, match="never opens pickled weights") as err:
            engine.load(source)
        assert PICKLED_MODEL in str(err.value) and str(source) in str(err.value)
        engine.close()
    assert opened == []                               # torch.load was never called on it
    # Nor did transformers look for (or ask its conversion Space for) a safetensors pull request.
    assert not [path for _m, path, _h in fake_hub.requests if "/discussions" in path or "/commits/" in path]
    assert not any(p.name == "pytorch_model.bin" for p in __import__("pathlib").Path(
        __import__("huggingface_hub").constants.HF_HUB_CACHE).rglob("*"))    # nor even downloaded


@pytest.mark.parametrize("layers", [5, 100_000])
def test_a_config_the_weights_do_not_fill_is_refused(tiny_models, tmp_path, layers):
    """config.json says more layers than the checkpoint holds: transformers would fill the missing ones
    with random numbers and load (5), or first build a model of 100,000 layers (minutes, gigabytes)."""
    import json
    import shutil

    from adapters_backend.engines.torch_engine import TorchEngine
    from adapters_backend.errors import BaseModelError

    folder = tmp_path / "odd"
    shutil.copytree(tiny_models.hf("llama"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = layers
    (folder / "config.json").write_text(json.dumps(config))
    engine = TorchEngine(device="cpu", dtype="float32")
    want = "lack 27 tensors that config.json describes" if layers == 5 else "claims 100000 layers"
    with pytest.raises(BaseModelError, match=want):
        engine.load(folder)
    engine.close()


def test_a_hub_model_downloads_only_what_it_needs_after_memory_and_disk_checks(fake_hub, tiny_models):  # noqa: F811
    """From the Hub, the model's side files and the weights transformers reads come down, with progress;
    an original-format copy of the weights, a pickle and the README stay there. A model that would not
    fit the memory or the disk is refused before any weight is fetched."""
    import shutil

    from huggingface_hub import constants

    from adapters_backend.engines.torch_engine import TorchEngine
    from adapters_backend.errors import BaseModelError, HubError
    from adapters_backend.jobs import JobContext

    folder = tiny_models.hf("llama")
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    files["consolidated.safetensors"] = files["model.safetensors"]            # Mistral-style original format
    files["pytorch_model.bin"] = b"not read"
    files["README.md"] = b"# tiny"
    fake_hub.add("tiny-org/many-files", files, tags=["safetensors", "llama"], library_name="transformers")
    reports = []
    engine = TorchEngine(device="cpu", dtype="float32")
    engine.load("tiny-org/many-files", JobContext(on_progress=lambda d, t, m: reports.append((d, t, m))))
    engine.close()
    fetched = {p.rsplit("/", 1)[-1] for m, p, _h in fake_hub.requests if m == "GET" and "/resolve/" in p}
    assert fetched == {n for n in files if n not in ("consolidated.safetensors", "pytorch_model.bin", "README.md")}
    weights = len(files["model.safetensors"])
    assert any(d >= weights and t >= weights for d, t, _m in reports)      # the download's bytes, reported

    # Listings that claim more than this machine holds: refused before any weight is requested, the
    # memory by the engine (f32 on the CPU: a bf16 checkpoint doubles), the disk by the download itself.
    from adapters_backend.hub.hf_models import download_hf_model
    from adapters_backend.machine import total_memory
    memory = total_memory()
    disk = shutil.disk_usage(constants.HF_HUB_CACHE).free
    bf16 = dict(files, **{"config.json": files["config.json"].replace(b'"dtype": "float32"', b'"dtype": "bfloat16"')})
    del bf16["consolidated.safetensors"]
    assert b'"dtype": "bfloat16"' in bf16["config.json"]
    fake_hub.add("tiny-org/too-big", bf16, tags=["safetensors", "llama"], library_name="transformers",
                 claimed_sizes={"model.safetensors": memory // 2 + (1 << 20)})       # ×2 in f32: over the memory
    fake_hub.add("tiny-org/huge", bf16, tags=["safetensors", "llama"], library_name="transformers",
                 claimed_sizes={"model.safetensors": disk + (1 << 40)})
    with pytest.raises(BaseModelError, match=r"need about .* of memory as float32 on cpu, more than this computer"):
        TorchEngine(device="cpu", dtype="float32").load("tiny-org/too-big")
    with pytest.raises(HubError, match=r"needs .* more on the disk .* free"):
        download_hf_model("tiny-org/huge")
    for repo in ("too-big", "huge"):
        assert not [p for m, p, _h in fake_hub.requests if f"/{repo}/resolve/" in p and p.endswith(".safetensors")]


def test_a_hub_model_download_can_be_cancelled_and_resumed(fake_hub, tiny_models):  # noqa: F811
    """Stop during the download ends the load at once with what came kept; the next load resumes."""
    import threading

    from adapters_backend.engines.torch_engine import TorchEngine
    from adapters_backend.errors import JobCancelled
    from adapters_backend.jobs import JobContext

    folder = tiny_models.hf("llama")
    fake_hub.add("tiny-org/slow", {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()},
                 tags=["safetensors", "llama"], library_name="transformers")
    fake_hub.throttle = 0.05                                  # seconds per chunk the server sends
    started = threading.Event()
    ctx = JobContext(on_progress=lambda d, t, m: started.set() if 0 < d < t else None)
    threading.Thread(target=lambda: started.wait(60) and ctx.cancel(), daemon=True).start()
    with pytest.raises(JobCancelled):
        TorchEngine(device="cpu", dtype="float32").load("tiny-org/slow", ctx)
    fake_hub.throttle = 0.0
    skipped = []
    engine = TorchEngine(device="cpu", dtype="float32")
    engine.load("tiny-org/slow", JobContext(on_progress=lambda d, t, m: skipped.append(d)))
    assert engine.info["path"] == "tiny-org/slow" and skipped and skipped[0] > 0       # what came is not fetched again
    engine.close()


@pytest.mark.parametrize("arch,change,want", [
    ("llama", {"intermediate_size": 4_000_000}, r"config.json describes a model of 1.54 billion parameters \(6.1 GB as "
                                       r"float32\), but its weights hold 115 thousand; e\.g\. "
                                       r"model.layers.0.mlp.gate_proj.weight is \[4000000, 64\]"),
    ("llama", {"intermediate_size": 64}, r"config.json does not match its weights: model.layers.0.mlp.gate_proj.weight is "
                                r"\[64, 64\] in config.json's model and \[128, 64\] in the weights"),
    ("llama", {"num_attention_heads": 0}, r"transformers cannot read its config.json \(ZeroDivisionError"),
    ("llama", {"vocab_size": -3}, r"transformers cannot build the model its config.json describes \(RuntimeError"),
    ("bloom", {"hidden_dropout": 1e6}, r"transformers loads it but cannot run it \(ValueError: dropout probability"),
])
def test_a_config_of_another_model_is_refused_before_memory_is_set_aside(tiny_models, tmp_path, arch, change,
                                                                          want):
    """config.json of a larger model beside small weights: transformers set aside the whole model it
    describes (6.2 GB here, 41 s) before finding the shapes differ, and would have taken all of the
    computer's memory for a larger one. It is refused from the headers, naming a tensor that differs, and
    the model that was loaded stays loaded and answers as before. A smaller one, and values transformers
    trips over (at load, or in the first token: then at every answer), are refused naming the file and
    what differs, not as an unexpected error."""
    import json
    import shutil

    from adapters_backend.engines.torch_engine import TorchEngine
    from adapters_backend.errors import BaseModelError

    engine = TorchEngine(device="cpu", dtype="float32")
    engine.load(tiny_models.hf("llama"))
    before = engine.eval_logits([1, 17, 42, 99])
    folder = tmp_path / "other"
    shutil.copytree(tiny_models.hf(arch), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(BaseModelError, match=want) as caught:
        engine.load(folder)
    assert str(folder) in str(caught.value)
    if "cannot run it" in want:          # found after loading: the model before was closed to make room
        assert not engine.loaded
    else:
        assert engine.info["path"] == str(tiny_models.hf("llama"))
        assert (engine.eval_logits([1, 17, 42, 99]) == before).all()
    engine.close()


def test_a_tokenizer_with_tokens_past_the_embeddings_is_refused_naming_the_token(tiny_models, tmp_path):
    """A tokenizer from another model, or with tokens added without resizing the model: its ids index
    past the embedding matrix, an IndexError with no file named on the CPU, and on CUDA a device-side
    assert after which the GPU refuses all work until the app restarts. Refused before the model runs."""
    import shutil

    from transformers import AutoTokenizer

    from adapters_backend.engines.base import ChatMessage, SamplingParams
    from adapters_backend.engines.torch_engine import TorchEngine
    from adapters_backend.errors import BaseModelError

    folder = tmp_path / "added-tokens"
    shutil.copytree(tiny_models.hf("llama"), folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_tokens(["<tool_call>"])                   # id 320; the model embeds 320 tokens
    tokenizer.save_pretrained(folder)
    engine = TorchEngine(device="cpu", dtype="float32")
    engine.load(folder)
    want = r"added-tokens: its tokenizer gives token 320 \('<tool_call>'\) for this text, but the model has " \
           r"embeddings for 320 tokens only"
    with pytest.raises(BaseModelError, match=want):
        list(engine.generate([ChatMessage("user", "call <tool_call> now")], SamplingParams(max_tokens=2)))
    with pytest.raises(BaseModelError, match="token 320"):
        engine.eval_logits([1, 320])
    reply = list(engine.generate([ChatMessage("user", "hello")], SamplingParams(max_tokens=2, temperature=0)))
    assert reply                                            # text within the vocabulary still runs
    engine.close()


def test_a_load_that_fails_after_the_old_model_closed_leaves_nothing_loaded(tiny_models, monkeypatch):
    """The app keeps the model it had when a load fails with the engine still holding it; a failure once
    the new weights are in (here: setting up the adapter hooks) must not leave the engine looking loaded
    with a half-set-up model the app would take for the old one."""
    from adapters_backend.engines import torch_adapters
    from adapters_backend.engines.torch_engine import TorchEngine

    engine = TorchEngine(device="cpu", dtype="float32")
    engine.load(tiny_models.hf("llama"))

    def no_memory(*args, **kwargs):
        raise MemoryError("no room for the adapter hooks")
    monkeypatch.setattr(torch_adapters, "AdapterBank", no_memory)
    with pytest.raises(MemoryError):
        engine.load(tiny_models.hf("llama"))
    assert not engine.loaded
    monkeypatch.undo()
    engine.load(tiny_models.hf("llama"))
    assert engine.eval_logits([1, 17]).shape[0] == 2
    engine.close()


def test_a_damaged_pre_quantized_checkpoint_is_refused_naming_the_shard(tiny_models, tmp_path):
    """A checkpoint saved quantized (quantization_config in config.json) skips the shape checks, whose
    element counts mean nothing for packed weights, but not the file's own structure, which was left to
    transformers' load (here it asked for bitsandbytes first; with it, the safetensors library's error
    names no file)."""
    import json
    import shutil

    from adapters_backend.engines.torch_engine import TorchEngine
    from adapters_backend.errors import BaseModelError

    folder = tmp_path / "quantized"
    shutil.copytree(tiny_models.hf("llama"), folder)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_8bit": True}
    (folder / "config.json").write_text(json.dumps(config))
    with open(folder / "model.safetensors", "ab") as f:
        f.write(b"\0" * 8)
    engine = TorchEngine(device="cpu", dtype="float32")
    with pytest.raises(BaseModelError, match=r"quantized: model.safetensors: its tensors do not fill its data "
                                             r"exactly"):
        engine.load(folder)
    engine.close()
