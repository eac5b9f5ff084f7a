"""A model that ends the app is not loaded again at the next start. The app notes the model it loads
until that model has answered once (or the app closes normally); a start that finds the note, for
the model it would load, loads nothing and says why, instead of stopping again at every start. A
file llama.cpp would abort on is refused at load without ending the app at all."""
from __future__ import annotations

import shutil

import gguf
import pytest

from desktop_app.app_state import STOPPED_ON_TRIAL
from desktop_app.settings import AppSettings

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

TIMEOUT = 60000


def ask(qtbot, app, text="Hi"):
    chat = app.window.chat
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(4)
    chat.prompt.setPlainText(text)
    chat.send()
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)


def test_the_note_lasts_from_load_to_first_answer(qtbot, make_app, demo_engine):
    demo, _ = demo_engine
    app = make_app()
    settings = app.state.settings
    on_disk_at_load = []
    app.state.model_loading.connect(lambda _label: on_disk_at_load.append(AppSettings().model_on_trial))
    app.start()
    assert on_disk_at_load == [str(demo.demo_model_path())]                # written before the load began
    assert settings.model_on_trial == str(demo.demo_model_path()), "loaded, not yet answered"
    ask(qtbot, app)
    assert settings.model_on_trial == ""
    assert AppSettings().model_on_trial == ""


def test_a_normal_close_clears_the_note(qtbot, make_app, demo_engine):
    app = make_app().start()
    assert app.state.settings.model_on_trial
    app.close()
    assert AppSettings().model_on_trial == ""
    again = make_app().start()                 # and the next start loads the model as usual
    assert again.state.model is not None


def test_a_start_after_the_app_stopped_on_a_model_loads_nothing_and_says_why(qtbot, make_app, demo_engine):
    demo, _ = demo_engine
    model = str(demo.demo_model_path())
    left = AppSettings()                          # what a process that died during the load left behind
    left.set_last_model(model, "llama.cpp")
    left.set_model_on_trial(model)
    app = make_app()
    failed = []
    app.state.model_load_failed.connect(lambda label, reason: failed.append((label, reason)))
    app.start(wait_model=False)
    qtbot.waitUntil(lambda: bool(failed), timeout=TIMEOUT)
    assert failed[0][0] == demo.demo_model_path().name
    assert STOPPED_ON_TRIAL in failed[0][1]
    assert app.state.model is None and app.state.loading is None
    assert app.window.model_picker.status.text().startswith("Could not load")
    qtbot.wait(300)
    assert app.state.model is None and not app.state.busy                  # no load started behind it
    assert app.state.settings.model_on_trial == ""                          # one start skips it, not every one
    app.window.model_picker.load_path(model)                                # the user tries again
    qtbot.waitUntil(lambda: app.state.model is not None, timeout=TIMEOUT)


def test_a_model_file_that_aborts_llama_cpp_is_refused_and_the_app_carries_on(qtbot, make_app, demo_engine,
                                                                              tmp_path):
    demo, _ = demo_engine
    bad = tmp_path / "made-wrongly.gguf"
    shutil.copyfile(demo.demo_model_path(), bad)
    reader = gguf.GGUFReader(bad, "r+")
    reader.fields["llama.attention.layer_norm_rms_epsilon"].parts[-1][0] = -1.0   # GGML_ASSERT(eps >= 0)
    reader.data.flush()
    del reader
    app = make_app().start()
    ask(qtbot, app)
    before = app.window.chat.last_reply_text()
    failed = []
    app.state.model_load_failed.connect(lambda label, reason: failed.append(reason))
    app.window.model_picker.load_path(str(bad))
    qtbot.waitUntil(lambda: bool(failed), timeout=TIMEOUT)
    assert "llama.cpp stopped while opening it" in failed[0] and "made-wrongly.gguf" in failed[0]
    assert app.state.settings.model_on_trial == ""
    assert app.state.settings.last_model["path"] == str(demo.demo_model_path())
    # The file was refused before the demo was closed: it is still loaded and answers, no reload needed
    assert app.state.model is not None and app.state.model.path == str(demo.demo_model_path())
    picker = app.window.model_picker
    assert picker.status.text() == "Could not load made-wrongly.gguf; Demo model still loaded"
    assert picker.load_button.isEnabled() and picker.progress.isHidden()
    assert picker.combo.currentData() == str(demo.demo_model_path())
    assert app.window.statusBar().currentMessage() == "Could not load made-wrongly.gguf"     # not "Loading …"
    app.window.chat.new_chat()
    ask(qtbot, app)
    assert app.window.chat.last_reply_text() == before
    picker.load_path(str(demo.demo_model_path()))                # loading again reuses the same engine
    qtbot.waitUntil(lambda: app.state.loading is None, timeout=TIMEOUT)
    assert app.state.model is not None and len(failed) == 1
    app.window.chat.new_chat()
    ask(qtbot, app)
    assert app.window.chat.last_reply_text() == before
