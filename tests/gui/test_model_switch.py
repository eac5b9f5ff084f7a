"""Switching models with a mix: adapters that do not fit the new model are held off, their cards say
why (the same words as the library's verdict), a Send never fails on them — not even one pressed the
moment the model is loaded — and they come back when a model they fit is loaded again. An error the
check could not foresee names the adapter, never its path, and the question gets a Retry. The picker
loads what is picked and every answer names the model that wrote it."""
from __future__ import annotations

import shutil

import pytest
from fixtures.tiny_gguf import tiny_models  # noqa: F401  (pytest fixture)
from PySide6.QtCore import Qt

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

TIMEOUT = 120000


@pytest.fixture
def other_model(tiny_models, tmp_path):  # noqa: F811
    """A GGUF model of another size than the demo (hidden 64): the demo adapters do not fit it."""
    path = tmp_path / "models" / "tiny-llama.gguf"
    path.parent.mkdir()
    shutil.copy(tiny_models.gguf("llama"), path)
    return path


def started(make_app, qtbot):
    app = make_app().start()
    qtbot.waitUntil(lambda: len(app.window.mixer.rows) == 3 and len(app.state.compat) == 3, timeout=TIMEOUT)
    return app


def by_name(state):
    return {e.name: e for e in state.library_model.entries()}


def load(qtbot, app, path):
    with qtbot.waitSignal(app.state.model_changed, timeout=TIMEOUT):
        app.window.model_picker.load_path(str(path))
    assert app.state.model is not None and app.state.model.path == str(path), app.state.errors.history
    qtbot.waitUntil(lambda: not app.state.checking_mix, timeout=TIMEOUT)


def ask(qtbot, chat, text="Hi", max_tokens=8):
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(max_tokens)
    chat.prompt.setPlainText(text)
    chat.send()
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)


def summary_of(library, label):
    form = library.summary
    for r in range(form.rowCount()):
        if form.itemAt(r, form.ItemRole.LabelRole).widget().text() == label:
            return form.itemAt(r, form.ItemRole.FieldRole).widget().text()
    return None


def test_misfits_are_held_off_with_the_reason_and_come_back(make_app, demo_engine, other_model, qtbot):
    app = started(make_app, qtbot)
    state, w = app.state, app.window
    names = by_name(state)
    shout, pirate = w.mixer.row_for(names["shout"].id), w.mixer.row_for(names["pirate"].id)
    shout.switch.click()
    pirate.switch.click()
    assert len(state.engine_mix()) == 2

    load(qtbot, app, other_model)
    qtbot.waitUntil(lambda: all(not v.usable for v in state.compat.values()), timeout=TIMEOUT)
    for row, name in ((shout, "shout"), (pirate, "pirate")):
        row = w.mixer.row_for(names[name].id)
        assert not row.switch.isChecked() and not row.switch.isEnabled() and not row.slider.isEnabled()
        note = row.unfit_note.text()
        assert row.unfit_note.isVisibleTo(w) and note.startswith("Off — does not fit this model: ")
        # The card says what the library's verdict says (one checker, one text).
        library = w.library
        assert library.select_adapter(names[name].id)
        verdict_text = summary_of(library, "With this model")
        assert note.removeprefix("Off — does not fit this model: ") in verdict_text
        assert "the base has" in note                 # e.g. "layer count: … the base has 2"
    assert state.engine_mix() == []
    entries = {e.name: e for e in state.mix_model.entries()}
    assert entries["shout"].enabled and entries["pirate"].enabled       # the user's choice is kept

    # A Send answers, with no adapter (none fits), and says so.
    chat = w.chat
    ask(qtbot, chat)
    last = chat.conversation.messages[-1]
    assert last.role == "assistant" and "error" not in last.info, last.info
    assert last.info["mix"] == "no adapters"
    assert not state.errors.history

    # Back to the demo model: both are on again, with their strengths, and the next answer uses them.
    demo_path = state.settings.recent_models()[1]["path"]
    load(qtbot, app, demo_path)
    qtbot.waitUntil(lambda: all(v.usable for v in state.compat.values()), timeout=TIMEOUT)
    for name in ("shout", "pirate"):
        row = w.mixer.row_for(names[name].id)
        assert row.switch.isChecked() and row.switch.isEnabled() and not row.unfit_note.isVisibleTo(w)
    assert [a.name for a in state.engine_mix()] == ["shout", "pirate"]


def test_a_send_the_moment_the_model_is_loaded_waits_for_the_check(make_app, demo_engine, other_model, qtbot):
    app = started(make_app, qtbot)
    state, w = app.state, app.window
    chat = w.chat
    w.mixer.rows[0].switch.click()                       # shout on
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(8)
    chat.prompt.setPlainText("Hi")
    sent = []

    def send_at_once():                                  # before the verdicts for the new model exist
        if state.model is not None and state.model.path == str(other_model) and not sent:
            assert state.checking_mix
            chat.send()
            sent.append(chat.generating)

    state.model_changed.connect(send_at_once)
    w.model_picker.load_path(str(other_model))
    qtbot.waitUntil(lambda: bool(sent), timeout=TIMEOUT)
    assert sent == [True]
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    last = chat.conversation.messages[-1]
    assert last.role == "assistant" and "error" not in last.info, last.info
    assert not state.errors.history, state.errors.history


def test_an_unforeseen_refusal_names_the_adapter_and_offers_retry(make_app, demo_engine, other_model, qtbot):
    app = started(make_app, qtbot)
    state, w = app.state, app.window
    names = by_name(state)
    w.mixer.row_for(names["shout"].id).switch.click()
    load(qtbot, app, other_model)
    qtbot.waitUntil(lambda: names["shout"].id in state.compat, timeout=TIMEOUT)
    # The engine refuses an adapter the app had not ruled out (here: its verdict is forgotten).
    state.compat = {}
    state.mix_model.set_unfit({})
    chat = w.chat
    ask(qtbot, chat, "Hello there")
    widgets = chat._message_widgets()
    question = widgets[-1]
    assert question.role == "user" and chat.conversation.messages[-1].role == "user"     # no answer
    problem = question.problem.text()
    assert question.problem.isVisibleTo(w) and problem.startswith("⚠ Not answered: shout does not fit")
    for path in (str(names["shout"].path), names["shout"].path.name):
        assert path not in problem
    assert question.retry_button.isVisibleTo(w) and question.retry_button.isEnabled()
    assert not state.errors.history                     # said in place, not in a dialog

    # Retry, once shout is off: answered, and the note is gone.
    w.mixer.row_for(names["shout"].id).switch.click()
    qtbot.mouseClick(question.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert chat.conversation.messages[-1].role == "assistant"
    assert not question.problem.isVisibleTo(w) and not question.retry_button.isVisibleTo(w)


def test_compare_leaves_misfits_out_and_says_so(make_app, demo_engine, other_model, qtbot):
    app = started(make_app, qtbot)
    state, w = app.state, app.window
    names = by_name(state)
    w.mixer.row_for(names["shout"].id).switch.click()
    state.save_preset("Loud")
    load(qtbot, app, other_model)
    qtbot.waitUntil(lambda: len(state.compat) == 3, timeout=TIMEOUT)
    compare = w.show_view("compare")
    compare.prompt.setPlainText("Hi")
    compare.sampling.max_tokens.setValue(6)
    compare.mix_a.setCurrentIndex(compare.mix_a.findData("current"))
    compare.mix_b.setCurrentIndex(compare.mix_b.findData("preset:Loud"))
    compare.run()
    qtbot.waitUntil(lambda: not compare.collector.running, timeout=TIMEOUT)
    for pane in (compare.pane_a, compare.pane_b):
        assert not pane.failure and "tok/s" in pane.info.full_text(), pane.info.full_text()
        assert "left out, they do not fit this model: shout" in pane.title.text()

    # A refusal the check did not foresee: the pane says why, by name, with Retry.
    state.compat = {}
    state.mix_model.set_unfit({})
    compare.run()
    qtbot.waitUntil(lambda: not compare.collector.running, timeout=TIMEOUT)
    for pane in (compare.pane_a, compare.pane_b):
        assert pane.failure.startswith("shout does not fit") and str(names["shout"].path) not in pane.failure
        assert "Not answered: shout does not fit" in pane.text.toPlainText()
        assert pane.retry_button.isVisibleTo(w)
    w.mixer.row_for(names["shout"].id).switch.click()         # off
    qtbot.mouseClick(compare.pane_a.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not compare.collector.running, timeout=TIMEOUT)
    assert not compare.pane_a.failure and compare.pane_b.failure


def test_picking_a_model_loads_it_and_answers_name_their_model(make_app, demo_engine, other_model, qtbot):
    app = started(make_app, qtbot)
    state, w = app.state, app.window
    picker, chat = w.model_picker, w.chat
    ask(qtbot, chat)
    load(qtbot, app, other_model)                      # now in the picker's list of recent models
    assert picker.combo.currentData() == str(other_model)
    ask(qtbot, chat)
    # Pick the demo model: it loads (no separate Load needed), and the picker shows it.
    demo_index = picker.combo.findText("Demo model (tiny, built in)")
    with qtbot.waitSignal(state.model_changed, timeout=TIMEOUT):
        picker.combo.setCurrentIndex(demo_index)
        picker.combo.activated.emit(demo_index)
    assert state.is_demo_loaded() and picker.combo.currentIndex() == picker.combo.findData(state.model.path)
    ready = f"llama.cpp · {'GPU' if state.capability('gpu_offload') else 'CPU'} · ready"   # where it runs
    assert picker.status.text() == ready and not picker.pending()
    qtbot.waitUntil(lambda: not state.checking_mix, timeout=TIMEOUT)
    ask(qtbot, chat)
    answers = [m for m in chat._message_widgets() if m.role == "assistant"]
    assert [a.model() for a in answers] == ["Demo model", "tiny-llama.gguf", "Demo model"]
    assert all(a.info.full_text().startswith(a.model() + " · ") for a in answers)

    # Choosing another engine than the loaded model's is pending until Load: said, and Load stands out.
    picker.engine_combo.setCurrentIndex(2)             # PyTorch
    assert picker.pending() and picker.load_button.font().bold()
    assert picker.status.text().endswith("chosen, not loaded")
    picker.engine_combo.setCurrentIndex(0)             # Auto: as loaded
    assert not picker.pending() and not picker.load_button.font().bold()
    assert picker.status.text() == ready


def test_error_texts_name_adapters_not_paths(tmp_path):
    from desktop_app.errors import with_names

    real = tmp_path / "data" / "library" / "adapters"
    (real / "shout" / "shout-peft").mkdir(parents=True)
    (real / "shout2").mkdir()
    link = tmp_path / "lib-link"
    link.symlink_to(real)
    names = {str(link / "shout" / "shout-peft"): "shout", str(real / "shout2"): "loud"}
    text = (f"{real / 'shout' / 'shout-peft'} does not fit m.gguf; {link / 'shout' / 'shout-peft'}: x; "
            f"{real / 'shout2'}/adapter_model.safetensors is truncated")
    assert with_names(text, names) == "shout does not fit m.gguf; shout: x; loud/adapter_model.safetensors is truncated"
