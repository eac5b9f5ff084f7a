"""The engine interface's data types, the reply-text streamer, chat templates and the fused-file writer."""
from __future__ import annotations

import subprocess
import sys

import engine_models as em
import numpy as np
import pytest

from adapters_backend.chat import ReplyText, template_from_metadata
from adapters_backend.chat.template import ChatTemplate
from adapters_backend.engines import available_engines, create_engine
from adapters_backend.engines.base import ActiveAdapter, ChatMessage, layer_factor
from adapters_backend.engines.fold import FoldPart, read_pairs, write_folded
from adapters_backend.errors import AdapterFormatError, EngineError, EngineUnavailable
from adapters_backend.formats.registry import read_adapter


def test_active_adapter_accepts_the_gui_spelling():
    a = ActiveAdapter(path="/m/style.gguf", scale=0.25, layer_scales=[[0, 3, 0.5], (4, 4, 1.0)])
    assert a.strength == 0.25 and a.scale == 0.25 and a.display_name == "style"
    assert a.layer_scales == ((0, 3, 0.5),)                     # factor-1 ranges change nothing: dropped
    assert ActiveAdapter("/m/peft-folder", 1.0).display_name == "peft-folder"
    assert ActiveAdapter("x", 1.0, [(0, 9, 1.0)]).layer_scales is None
    with pytest.raises(ValueError):
        ActiveAdapter("x", float("nan"))
    with pytest.raises(ValueError):
        ActiveAdapter("x", 1.0, [(3, 1, 0.5)])
    assert [layer_factor(((0, 3, 0.5), (2, 2, 3.0)), i) for i in (0, 2, 4, None)] == [0.5, 3.0, 1.0, 1.0]


def test_importing_the_engines_package_does_not_load_llama_cpp():
    code = ("import sys, adapters_backend.engines as e; print(e.available_engines()); "
            "print('llama_cpp' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "'llama.cpp'" in out and out.strip().endswith("False False")
    assert "llama.cpp" in available_engines()
    with pytest.raises(EngineUnavailable):
        create_engine("no-such-engine")


@pytest.mark.parametrize("pieces, stops, want, stopped", [
    ([b" Hel", b"lo", b" world"], (), ["Hel", "lo", " world"], False),
    ([b"A", b"\nUs", b"er", b": more"], ("\nUser:",), ["A", "", "", ""], True),
    ([b"A", b"\nUs", b"ed it"], ("\nUser:",), ["A", "", "\nUsed it"], False),
    (["é".encode()[:1], "é".encode()[1:], b"!"], (), ["", "é", "!"], False),
])
def test_reply_text(pieces, stops, want, stopped):
    r = ReplyText(stops)
    assert [r.push(p) for p in pieces] == want
    assert r.stopped == stopped
    r.flush()
    assert r.text == "".join(want)


def test_chat_templates():
    msgs = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello."),
            ChatMessage("user", "Bye")]
    t = template_from_metadata({"tokenizer.chat_template": em.CHAT_TEMPLATE}, bos_token="<s>", eos_token="</s>")
    p = t.render(msgs)
    assert p.text == ("<s><|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello.</s>\n"
                      "<|user|>\nBye</s>\n<|assistant|>\n")
    assert not p.add_bos and t.source == "gguf" and not t.note
    fallback = template_from_metadata({}, bos_token="<s>", eos_token="</s>")
    assert fallback.source == "fallback" and "no chat template" in fallback.note
    assert fallback.render(msgs).text.endswith("User: Bye\nAssistant:") and fallback.render(msgs).stops
    # A template that refuses the system role gets the system text in the first user turn.
    strict = ChatTemplate("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}"
                          "{% endif %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}", bos_token="", eos_token="",
                          source="gguf")
    assert strict.render(msgs).text.startswith("[user]Be brief.\n\nHi[assistant]")
    refusing = ChatTemplate("{{ raise_exception('never') }}", bos_token="", eos_token="", source="gguf")
    with pytest.raises(EngineError, match="never"):
        refusing.render([ChatMessage("user", "x")])


def test_fused_file_equals_the_weighted_sum(tiny, tmp_path):
    out = write_folded(tmp_path / "fused.gguf", [FoldPart(tiny.l1_path, 0.7), FoldPart(tiny.l2_path, -0.5),
                                                 FoldPart(tiny.l1_f16_path, 0.0)])
    fused = read_adapter(out, format_id="gguf")
    pairs = read_pairs(fused)
    assert fused.config["alpha"] == 0.0 and set(pairs) == set(tiny.l1.pairs) | set(tiny.l2.pairs)
    import gguf
    tensors = {t.name: np.asarray(t.data, np.float64) for t in gguf.GGUFReader(out).tensors}
    for name in pairs:
        a, b = tensors[name + ".lora_a"], tensors[name + ".lora_b"]
        got = a @ b.T if name == "token_embd.weight" else b @ a
        want = sum(s * lora.delta(name) for lora, s in ((tiny.l1, 0.7), (tiny.l2, -0.5)) if name in lora.pairs)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert [f.name for f in tmp_path.iterdir()] == ["fused.gguf"]          # no temporary file left
    with pytest.raises(AdapterFormatError):
        write_folded(tmp_path / "bad.gguf", [FoldPart(tiny.l1_path, 1.0), FoldPart(tiny.qwen_path, 1.0)])
    assert not list(tmp_path.glob("bad.gguf*"))


def test_gguf_header_reader_is_fast_and_bounded(tiny, tmp_path):
    import time

    from adapters_backend.gguf.header import read_header

    t0 = time.perf_counter()
    head = read_header(tiny.base)
    assert time.perf_counter() - t0 < 0.5                      # gguf-py's reader needs ~1 s for this vocab
    assert head.metadata["general.architecture"] == "llama" and head.array_lengths["tokenizer.ggml.tokens"] == 32000
    assert head.tensors["token_embd.weight"].ne == (64, 32000)
    data = tiny.base.read_bytes()[:700_000]
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.gguf"
    for i in range(60):
        blob = bytearray(data[: int(rng.integers(8, len(data)))])
        if i % 2:                                              # flip a few bytes, counts and lengths included
            for pos in rng.integers(4, min(len(blob), 4096), 4):
                blob[pos] = int(rng.integers(0, 256))
        bad.write_bytes(bytes(blob))
        t0 = time.perf_counter()
        try:
            read_header(bad)
        except ValueError:
            pass
        assert time.perf_counter() - t0 < 2.0


def test_fused_builder_waits_for_idle_and_builds_only_the_newest_mix(tiny, tmp_path):
    import time

    from adapters_backend.engines.fused_builder import FusedBuilder

    b = FusedBuilder(tmp_path / "fused", settle=0.1)
    try:
        (tmp_path / "fused").mkdir()
        old = [FoldPart(tiny.l1_path, 0.2), FoldPart(tiny.l2_path, 0.3)]
        new = [FoldPart(tiny.l1_path, 0.9), FoldPart(tiny.l2_path, 0.3)]
        b.set_busy(True)                          # a generation is running
        b.request("old", old)
        b.request("new", new)                     # the user moved a slider: only this one matters
        time.sleep(0.4)
        assert b.result("new") is None and not list((tmp_path / "fused").glob("*.gguf"))
        b.set_busy(False)
        path = b.wait("new", timeout=30)
        assert path is not None and path.exists() and b.result("old") is None
        pairs = read_pairs(read_adapter(path, format_id="gguf"))
        assert pairs["blk.0.attn_q.weight"].b_shape[-1] == 4               # l2 has no attn_q
        assert pairs["blk.0.ffn_down.weight"].b_shape[-1] == 8
    finally:
        b.close()
    assert not (tmp_path / "fused").exists()
