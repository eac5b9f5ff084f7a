"""A GGUF model that makes llama.cpp abort is opened in a child first, so it ends that child, not this
process: the engine raises an error naming the file, and nothing that was loaded is lost."""
from __future__ import annotations

import shutil

import gguf
import pytest

from adapters_backend.engines import llama_probe
from adapters_backend.engines.base import ChatMessage, SamplingParams
from adapters_backend.engines.llama_cpp_engine import LlamaCppEngine
from adapters_backend.errors import BaseModelError

GREEDY = SamplingParams(max_tokens=4, temperature=0)


def _with_field(src, dest, key: str, value):
    """A copy of `src` with one scalar metadata value changed in place, as a broken tool would write it."""
    shutil.copyfile(src, dest)
    reader = gguf.GGUFReader(dest, "r+")
    reader.fields[key].parts[-1][0] = value
    reader.data.flush()
    del reader
    return dest


def _reply(engine) -> str:
    return "".join(c.text for c in engine.generate([ChatMessage("user", "Hello")], GREEDY))


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A cache folder of the test's own: no model counts as checked before it."""
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(llama_probe.PASSED, "here", set())


def test_a_model_that_aborts_llama_cpp_is_refused_and_the_loaded_one_stays(tiny, tmp_path, own_cache):
    # A negative norm epsilon passes every check llama.cpp reports as an error and then stops the
    # process with GGML_ASSERT(eps >= 0.0f) at the first evaluation: before the probe, this test
    # process ended there.
    bad = _with_field(tiny.base, tmp_path / "negative-eps.gguf", "llama.attention.layer_norm_rms_epsilon", -1.0)
    engine = LlamaCppEngine(n_ctx=128, n_threads=1)
    try:
        engine.load(tiny.base)
        before = _reply(engine)
        with pytest.raises(BaseModelError) as err:
            engine.load(bad)
        assert str(bad) in str(err.value)
        assert "llama.cpp stopped while opening it" in err.value.problem
        assert "GGML_ASSERT(eps >= 0.0f)" in err.value.problem
        assert engine.loaded and engine.info["path"] == str(tiny.base)   # refused before the old model went
        assert _reply(engine) == before
    finally:
        engine.close()


def test_a_model_that_opened_cleanly_is_not_checked_again(tiny, tmp_path, own_cache, monkeypatch):
    llama_probe.probe_model(tiny.base)
    assert any(str(tiny.base.resolve()) in e for e in llama_probe.PASSED.saved())   # kept in the cache folder
    monkeypatch.setattr(llama_probe.PASSED, "here", set())      # as in a process started afresh

    def no_child(*args, **kwargs):
        raise AssertionError("a model that passed was checked again")
    monkeypatch.setattr(llama_probe.subprocess, "Popen", no_child)
    llama_probe.probe_model(tiny.base)
    tiny_copy = tmp_path / "base-touched.gguf"
    shutil.copyfile(tiny.base, tiny_copy)            # another file (path, size, time): checked afresh
    with pytest.raises(AssertionError, match="checked again"):
        llama_probe.probe_model(tiny_copy)


def test_a_file_llama_cpp_refuses_with_an_error_gets_llama_cpps_reason(tiny, tmp_path, own_cache):
    # An unknown architecture: llama.cpp returns NULL with a reason, it does not abort. The child hands
    # that back and the engine's own load reports llama.cpp's reason, as before the probe.
    bad = tmp_path / "unknown-arch.gguf"
    shutil.copyfile(tiny.base, bad)
    reader = gguf.GGUFReader(bad, "r+")
    name = reader.fields["general.architecture"].parts[-1]
    name[:] = [ord(c) for c in "llamb"]
    reader.data.flush()
    del reader
    assert llama_probe.probe_model(bad) is None
    engine = LlamaCppEngine(n_ctx=128, n_threads=1)
    with pytest.raises(BaseModelError) as err:
        engine.load(bad)
    assert "stopped while opening" not in err.value.problem
    assert "llamb" in err.value.problem


def test_a_load_that_fails_after_the_old_model_closed_leaves_nothing_loaded(tiny, monkeypatch):
    """The app keeps the model it had when a load fails with the engine still holding it; a failure after
    llama.cpp opened the new file (here: no memory for the KV bookkeeping) must not leave the engine
    looking loaded with a half-opened model the app would take for the old one."""
    from adapters_backend.engines import llama_cpp_engine

    engine = LlamaCppEngine(n_ctx=128, n_threads=1)
    try:
        engine.load(tiny.base)

        def no_memory(*args, **kwargs):
            raise MemoryError("no room for the KV bookkeeping")
        monkeypatch.setattr(llama_cpp_engine, "LlamaKV", no_memory)
        with pytest.raises(MemoryError):
            engine.load(tiny.base)
        assert not engine.loaded
        monkeypatch.undo()
        engine.load(tiny.base)
        assert _reply(engine)
    finally:
        engine.close()


def test_a_crash_reason_names_the_assert_or_the_signal():
    text = "…/llama-model.cpp:1328: GGML_ASSERT(hparams.n_layer_all > 0) failed\n#0 0x7f in ggml_abort"
    assert llama_probe.crash_reason(text, -6) == "GGML_ASSERT(hparams.n_layer_all > 0) failed"
    assert llama_probe.crash_reason("", -11) == "ended by SIGSEGV"
    assert llama_probe.crash_reason("", 3) == "exit code 3"             # abort() on Windows
