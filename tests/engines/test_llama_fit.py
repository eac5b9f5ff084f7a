"""Fitting a GGUF model to the machine (engines/llama_fit.py). GPU layers: automatic puts every layer on
the GPU, fewer when the model does not fit its memory, none without a GPU; the user sees where the model
runs. Context: never longer than the model was trained for, and the user is told when it was cut.

This machine's llama.cpp has no GPU, so the ladder is driven by telling the loader there is one (llama.cpp
ignores GPU layers without a GPU device) and by real out-of-memory failures: a process whose address
space is capped asks for a KV cache larger than the cap."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from adapters_backend.engines.base import ChatMessage, SamplingParams, run_to_text
from adapters_backend.engines.llama_fit import (
    Fit,
    context_to_ask,
    device_text,
    gpu_layer_tries,
    host_bytes,
    memory_note,
    trained_context,
)
from adapters_backend.errors import EngineError
from adapters_backend.machine import total_memory


def test_the_layer_counts_tried():
    assert gpu_layer_tries(-1, 32, gpu=True) == [-1, 24, 16, 8, 0]
    assert gpu_layer_tries(-1, 2, gpu=True) == [-1, 1, 0]            # no count twice
    assert gpu_layer_tries(-1, 32, gpu=False) == [0]                 # nothing to offload to
    assert gpu_layer_tries(12, 32, gpu=True) == [12]                 # the user's own count, alone
    assert gpu_layer_tries(0, 32, gpu=True) == [0]


def test_where_the_model_runs_in_words():
    assert device_text(0, 32, gpu=False) == "CPU"
    assert device_text(-1, 32, gpu=True) == device_text(40, 32, gpu=True) == "GPU"
    assert device_text(8, 32, gpu=True) == "GPU, 8 of 32 layers"
    assert device_text(0, 32, gpu=True) == "CPU"


def test_automatic_is_the_default_and_says_where_the_model_runs(tiny, make_engine):
    engine = make_engine(tiny.base)                   # no n_gpu_layers: the default
    info = engine.info
    if engine.capabilities.gpu_offload:               # a GPU build of llama.cpp: everything fits a tiny model
        assert info["device"] == "GPU" and info["n_gpu_layers"] == -1
    else:
        assert info["device"] == "CPU" and info["n_gpu_layers"] == 0
    assert "GPU's memory" not in info["note"] and "needs about" not in info["note"]   # a tiny model fits


def test_a_model_larger_than_the_memory_is_said_to_crawl():
    gb = 10**9
    on_cpu = Fit(0, "CPU", 4096)
    assert host_bytes(9 * gb, 1 * gb, on_cpu, 32, unified=False) == 10 * gb
    assert host_bytes(9 * gb, 1 * gb, Fit(-1, "GPU", 4096), 32, unified=False) == 0          # all in the GPU's
    assert host_bytes(9 * gb, 1 * gb, Fit(-1, "GPU", 4096), 32, unified=True) == 10 * gb     # Apple silicon
    assert host_bytes(8 * gb, 0, Fit(24, "GPU, 24 of 32 layers", 4096), 32, unified=False) == 2 * gb
    assert memory_note(10 * gb, 16 * gb) is None
    note = memory_note(15 * gb, 16 * gb)
    assert note.startswith("This model needs about 15.0 GB of memory and this computer has 16.0 GB")
    assert memory_note(15 * gb, None) is None                      # unknown: nothing said


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="compares with /proc/meminfo")
def test_the_computers_memory_is_read():
    with open("/proc/meminfo") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    assert abs(total_memory() - kib * 1024) < 64 << 20             # the kernel keeps a little for itself


def test_the_context_is_never_longer_than_the_model_was_trained_for():
    assert context_to_ask(2048, 4096) == (2048, None)
    assert context_to_ask(2048, None) == (2048, None)                # the file does not say
    n_ctx, note = context_to_ask(2048, 512)
    assert n_ctx == 512 and "512 tokens, not the 2,048 asked for" in note
    assert context_to_ask(0, 512) == (512, None)                     # 0: as long as the model allows
    assert trained_context({"llama.context_length": 8192}, "llama") == 8192
    for hostile in (0, -5, "4096", True, 2.5, None):                 # what a damaged header may say
        assert trained_context({"llama.context_length": hostile}, "llama") is None


def test_a_context_longer_than_the_training_is_cut_and_said(tiny, make_engine):
    engine = make_engine(tiny.base, n_ctx=2048)                     # the tiny model says 512
    assert engine.info["n_ctx"] == 512 and engine.info["n_ctx_train"] == 512
    assert "The context is 512 tokens, not the 2,048 asked for" in engine.info["note"]
    too_long = [ChatMessage("user", "word " * 600)]
    with pytest.raises(EngineError, match=r"your message alone \(6\d\d tokens\) does not fit the context of 512 "
                                          r"tokens; shorten it$"):
        run_to_text(engine, too_long, SamplingParams(max_tokens=2))  # no "longer context": there is none
    chat = [ChatMessage("system", "Be brief."), ChatMessage("user", "word " * 300),
            ChatMessage("assistant", "word " * 300), ChatMessage("user", "and?")]
    with pytest.raises(EngineError, match=r"the conversation \(6\d\d tokens\) does not fit the context of 512 "
                                          r"tokens; start a new chat$"):          # a new chat helps this one
        run_to_text(engine, chat, SamplingParams(max_tokens=2))
    shorter = make_engine(tiny.base, n_ctx=256)
    with pytest.raises(EngineError, match="shorten it or load the model with a longer context"):
        run_to_text(shorter, too_long, SamplingParams(max_tokens=2))
    long = make_engine(tiny.long_base, n_ctx=2048)                  # one that allows it keeps what was asked
    assert long.info["n_ctx"] == 2048 and "asked for" not in long.info["note"]
    assert make_engine(tiny.base, n_ctx=300).info["n_ctx"] == 300   # shorter than the training: as asked


_LADDER = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from adapters_backend.core.base_model import load_base_model
    from adapters_backend.engines.llama_fit import open_fitted
    from adapters_backend.engines.llama_runtime import OutOfMemoryLoadError
    from adapters_backend.jobs import JobContext

    model, n_ctx = Path(sys.argv[1]), int(sys.argv[2])
    base = load_base_model(model, need_table=False)
    vm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (512 << 20), resource.RLIM_INFINITY))
    said = []
    ctx = JobContext(lambda done, total, message: said.append(message) if "layers" in message else None)
    out = {}
    try:
        open_fitted(model, ctx, {"n_ctx": n_ctx, "n_threads": 1}, base, gpu=True)
    except OutOfMemoryLoadError as exc:
        out["error"] = str(exc)
    out["said"] = said
    llm, fit = open_fitted(model, ctx, {"n_ctx": 256, "n_threads": 1}, base, gpu=True)
    out["layers"], out["device"], out["notes"] = fit.gpu_layers, fit.device, fit.notes
    out["tokens"] = len(llm.tokenize(b"Hello there"))
    print(json.dumps(out))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="caps the address space through /proc")
def test_a_model_that_does_not_fit_tries_fewer_layers_then_says_what_to_do(tiny):
    # The tiny model's KV cache is 512 bytes a token: a context of 2^20 tokens asks for 512 MiB more
    # than the process may have, so every try fails in llama.cpp's allocator, as a GPU's would.
    run = subprocess.run([sys.executable, "-c", _LADDER, str(tiny.long_base), str(1 << 20)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["said"] == [f"the model does not fit the GPU's memory: trying {n} of 2 layers" for n in (1, 0)]
    assert str(tiny.long_base) in out["error"] and "not enough memory to load the model" in out["error"]
    assert "failed to allocate" in out["error"]                      # llama.cpp's own reason
    assert "fewer GPU layers" not in out["error"] and "tried 3 GPU layer counts down to none" in out["error"]
    # What the failed tries took was given back: the next load fits at once, with every layer.
    assert out["layers"] == -1 and out["device"] == "GPU" and out["notes"] == [] and out["tokens"] > 0
