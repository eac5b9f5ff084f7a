"""HF model folders in the model picker run on the PyTorch engine: a tiny Llama folder is opened through
the picker, a real PEFT adapter is installed and added with the mixer, the reply streams and is exactly
what TorchEngine gives for the same mix and seed when run directly. Without PyTorch the picker says how
to get it."""
from __future__ import annotations

import sys

import pytest
from fixtures.tiny_adapters import tiny_adapters  # noqa: F401  (pytest fixture)
from fixtures.tiny_gguf import tiny_models  # noqa: F401  (pytest fixture)
from PySide6.QtCore import Qt

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

TIMEOUT = 120000
PROMPT = "hello world"


def choose(picker, key) -> None:
    """Pick an entry of the model combo as the user does (the combo's `activated`)."""
    i = picker.combo.findData(key)
    assert i >= 0, [picker.combo.itemData(j) for j in range(picker.combo.count())]
    picker.combo.setCurrentIndex(i)
    picker.combo.activated.emit(i)


def direct_torch_reply(model, adapter, messages, params) -> str:
    from adapters_backend.engines.base import ActiveAdapter, ChatMessage, SamplingParams
    from adapters_backend.engines.torch_engine import TorchEngine
    from adapters_backend.jobs import JobContext

    engine = TorchEngine(n_ctx=2048)
    try:
        engine.load(str(model), JobContext())
        engine.set_adapters([ActiveAdapter(path=str(adapter), strength=1.0)] if adapter else [])
        chunks = engine.generate([ChatMessage(role=r, content=c) for r, c in messages], SamplingParams(**params),
                                 JobContext())
        return "".join(c.text for c in chunks)
    finally:
        engine.close()


def test_engine_chosen_by_model_kind(tmp_path, app_env):
    from adapters_backend.model_ref import engine_for
    folder = tmp_path / "some-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert engine_for(folder) == "torch"
    assert engine_for(tmp_path / "x.gguf") == "llama.cpp"
    assert engine_for("Qwen/Qwen2.5-0.5B-Instruct") == "torch"          # a Hub id
    assert engine_for(tmp_path / "missing" / "file.bin") == "llama.cpp"  # a path, not an id


def test_hf_folder_on_torch_with_peft_adapter(make_app, demo_engine, tiny_models, tiny_adapters,  # noqa: F811
                                              qtbot, monkeypatch):
    folder = tiny_models.hf("llama")
    adapter = tiny_adapters.make("llama", "lora")
    app = make_app().start()
    state, w = app.state, app.window
    picker = w.model_picker

    # File → "Open model folder (PyTorch)…": the folder dialog answers with the tiny Llama folder.
    from PySide6.QtWidgets import QFileDialog

    from desktop_app.widgets import model_picker
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(lambda *a, **k: str(folder)))
    assert picker.engine_combo.currentText() == "Auto"
    with qtbot.waitSignal(state.model_changed, timeout=TIMEOUT):
        choose(picker, model_picker.OPEN_FOLDER)
    assert state.model is not None, state.errors.history
    assert state.model.engine == "torch" and state.model.path == str(folder)
    assert state.model.info["architecture"] == "llama" and state.model_layers() == 2
    assert picker.status.text() == f"torch · {state.model.info['device']} · ready"
    assert picker.combo.currentData() == str(folder)           # now in the picker's list (recent models)

    # Install the PEFT adapter (as a drop on the window does) and add it with the mixer's button.
    n = state.library_model.rowCount()
    with qtbot.waitSignal(w.drops.installed, timeout=TIMEOUT) as installed:
        w.drops.install(adapter)
    assert state.library_model.rowCount() == n + 1                 # listed at once
    new = installed.args[1]
    assert new.format == "peft" and state.library_model.entry_by_id(new.id) is not None
    qtbot.waitUntil(lambda: new.id in state.compat, timeout=TIMEOUT)
    assert state.compat[new.id].usable, state.compat[new.id]
    # The demo adapters (another architecture) are greyed out with the reason.
    demo_ids = [e.id for e in state.library_model.entries() if e.id != new.id]
    assert demo_ids and all(not state.compat[i].usable for i in demo_ids)
    mixer = w.mixer
    for row in range(mixer.available.rowCount()):
        if mixer.available.entry(row).id == new.id:
            mixer.available_view.setCurrentIndex(mixer.available.index(row, 0))
        else:                                                      # incompatible: not selectable for the mix
            assert not mixer.available.flags(mixer.available.index(row, 0)) & Qt.ItemFlag.ItemIsEnabled
    for e in list(state.mix_model.entries()):                    # demo adapters added on first run
        state.mix_model.remove_adapter(e.adapter_id)
    assert mixer.add_button.isEnabled()
    qtbot.mouseClick(mixer.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(mixer.rows) == 1, timeout=TIMEOUT)
    assert [(a.path, a.strength, a.layer_scales) for a in state.engine_mix()] == [(str(new.path), 1.0, None)]

    # Generate: the reply streams in pieces and equals the engine's own answer for this mix.
    chat = w.chat
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(24)
    chat.sampling.seed.setValue(7)
    pieces = []
    state.host.token_streamed.connect(lambda _rid, t, _n: pieces.append(t))
    chat.prompt.setPlainText(PROMPT)
    qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    assert chat.generating
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    reply = chat.last_reply_text()
    assert reply and reply == "".join(pieces) and len(pieces) >= 1
    assert state.engine_mix()[0].path == str(state.library_model.entry_by_id(new.id).path)
    params = chat.sampling.params()
    messages = [("user", PROMPT)]
    expected = direct_torch_reply(folder, state.engine_mix()[0].path, messages, params)
    assert reply == expected
    # …and the adapter is really applied (the base model alone answers differently).
    assert direct_torch_reply(folder, None, messages, params) != expected
    assert "tok/s" in w.status_label.text() or "tokens" in w.status_label.text()


def test_without_torch_the_picker_says_how_to_enable_it(make_app, demo_engine, tiny_models, qtbot,  # noqa: F811
                                                        monkeypatch):
    folder = tiny_models.hf("llama")
    app = make_app().start()
    state, w = app.state, app.window
    picker = w.model_picker
    # As in an installation without the [torch] extra: `import torch` fails.
    monkeypatch.setitem(sys.modules, "torch", None)
    picker.refresh()
    from desktop_app.widgets import model_picker
    i = picker.combo.findData(model_picker.OPEN_FOLDER)
    assert "needs PyTorch" in picker.combo.itemText(i)
    assert "pip install 'loradeck[torch]'" in picker.combo.itemData(i, Qt.ItemDataRole.ToolTipRole)
    assert "not installed" in picker.engine_combo.itemText(2)
    choose(picker, model_picker.OPEN_FOLDER)                   # no folder dialog: the explanation instead
    assert "pip install 'loradeck[torch]'" in picker.torch_box.text()
    assert picker.status.text() == "PyTorch engine not installed"
    picker.torch_box.close()

    # A folder from the recent list is still tried: the load fails with the same advice, in the picker too.
    with qtbot.waitSignal(state.model_load_failed, timeout=TIMEOUT) as failed:
        picker.load_path(str(folder))
    assert "loradeck[torch]" in failed.args[1]
    assert picker.status.text().endswith("PyTorch not installed")
    assert "pip install 'loradeck[torch]'" in picker.status.toolTip()
    assert any("loradeck[torch]" in msg for _ctx, msg in state.errors.history)
    assert state.model is None


def test_a_refused_model_folder_leaves_the_loaded_one_answering(make_app, demo_engine, tiny_models,  # noqa: F811
                                                                 qtbot, tmp_path):
    """A PyTorch model is checked before the engine lets go of the one it has: a folder whose config.json
    describes a larger model than its weights is refused and the loaded model answers as before."""
    import json
    import shutil

    folder = tiny_models.hf("llama")
    app = make_app().start()
    state, w = app.state, app.window
    with qtbot.waitSignal(state.model_changed, timeout=TIMEOUT):
        w.model_picker.load_path(str(folder))
    assert state.model.engine == "torch"
    chat = w.chat
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(6)

    def answer() -> str:
        chat.new_chat()
        chat.prompt.setPlainText(PROMPT)
        chat.send()
        qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
        return chat.last_reply_text()
    before = answer()
    bad = tmp_path / "bigger-config"
    shutil.copytree(folder, bad)
    config = json.loads((bad / "config.json").read_text())
    (bad / "config.json").write_text(json.dumps({**config, "intermediate_size": 4_000_000}))
    failed = []
    state.model_load_failed.connect(lambda label, reason: failed.append(reason))
    w.model_picker.load_path(str(bad))
    qtbot.waitUntil(lambda: bool(failed), timeout=TIMEOUT)
    assert "config.json describes a model of 1.54 billion parameters" in failed[0]
    assert state.model is not None and state.model.path == str(folder) and state.model.engine == "torch"
    assert w.model_picker.status.text() == f"Could not load bigger-config; {state.model.label} still loaded"
    assert before and answer() == before
