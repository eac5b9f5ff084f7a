"""Small things that must not be silent or odd: Show in folder without a file manager, a regenerate
that draws a new seed, the details header after Rename, deleting a preset, a sweep over one adapter
twice, the About box, a dark theme that follows the system or the user's choice."""
from __future__ import annotations

import os

import pytest
from fixtures.recording_program import recording_program
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

TIMEOUT = 60000


@pytest.fixture
def demo_app(make_app, demo_engine, qtbot):
    app = make_app().start()
    qtbot.waitUntil(lambda: app.state.library_model.rowCount() == 3 and len(app.window.mixer.rows) == 3,
                    timeout=TIMEOUT)
    return app


@pytest.mark.skipif(os.name == "nt", reason="xdg-open is the Linux/BSD opener")
@pytest.mark.parametrize("opener", ["none installed", "finds no file manager", "works"])
def test_show_in_folder_says_when_nothing_opened_it(demo_app, qtbot, tmp_path, monkeypatch, opener):
    state, w = demo_app.state, demo_app.window
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opened = None
    if opener != "none installed":
        opened = recording_program(bin_dir, "xdg-open", 0 if opener == "works" else 3)
    monkeypatch.setenv("PATH", str(bin_dir))
    library = w.show_view("library")
    entry = state.library_model.entries()[0]
    assert library.select_adapter(entry.id)
    library.reveal_button.click()
    qtbot.waitUntil(lambda: library._reveal_job.done, timeout=TIMEOUT)
    qtbot.wait(20)
    folder = entry.path if entry.path.is_dir() else entry.path.parent
    if opener == "works":
        assert opened.read_text().split() == [str(folder)]
        assert getattr(library, "reveal_box", None) is None
        return
    box = library.reveal_box
    assert box.isVisible() and box.icon() == QMessageBox.Icon.Warning
    assert str(entry.path) in box.text()
    assert ("no file manager is registered" if opener == "finds no file manager" else "xdg-open was not found") \
        in box.text()
    copy = next(b for b in box.buttons() if b.text() == "Copy path")
    copy.click()
    assert QGuiApplication.clipboard().text() == str(entry.path)


@pytest.mark.skipif(os.name == "nt", reason="a shell-script stand-in for macOS's open")
def test_show_in_folder_reveals_a_bundle_named_folder_on_macos_instead_of_opening_it(tmp_path, monkeypatch):
    """`open X.app` launches an app bundle; an adapter folder keeps the name it came with, so on macOS
    Show in folder asks Finder to reveal it (`open -R`)."""
    from desktop_app import file_manager

    bin_dir = tmp_path / "bin"
    args = recording_program(bin_dir, "open")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(file_manager.sys, "platform", "darwin")
    bundle = tmp_path / "library" / "Styles.app"
    bundle.mkdir(parents=True)
    assert file_manager.open_folder(str(bundle)) is None
    assert args.read_text().split("\n")[:2] == ["-R", str(bundle)]


def test_regenerate_draws_a_new_seed_unless_one_is_fixed(demo_app, qtbot):
    chat = demo_app.window.chat
    assert chat.sampling.seed.value() == -1 and chat.sampling.seed.text() == "random"
    chat.sampling.max_tokens.setValue(4)
    chat.prompt.setPlainText("Tell me a joke.")
    chat.send()
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    seeds = [chat.conversation.messages[-1].info["seed"]]
    for _ in range(2):
        chat.regenerate()
        qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
        seeds.append(chat.conversation.messages[-1].info["seed"])
    assert all(s >= 0 for s in seeds) and len(set(seeds)) == 3
    chat.sampling.seed.setValue(1234)                  # fixed by the user: regenerate keeps it
    chat.regenerate()
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    first = chat.last_reply_text()
    chat.regenerate()
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert chat.conversation.messages[-1].info["seed"] == 1234 and chat.last_reply_text() == first


def test_rename_shows_in_the_details_header(demo_app, qtbot):
    state, w = demo_app.state, demo_app.window
    library = w.show_view("library")
    entry = next(e for e in state.library_model.entries() if e.name == "pirate")
    assert library.select_adapter(entry.id)
    assert "pirate" in library.title.text()
    state.rename_adapter(entry.id, "Captain <Hook>")
    qtbot.waitUntil(lambda: state.library_model.entry_by_id(entry.id).name == "Captain <Hook>", timeout=TIMEOUT)
    assert library.title.text() == "<b>Captain &lt;Hook&gt;</b>"
    assert w.mixer.row_for(entry.id).name_label.full_text() == "Captain <Hook>"


def test_deleting_a_preset_asks_first(demo_app, qtbot):
    state, mixer = demo_app.state, demo_app.window.mixer
    state.save_preset("Keep me")
    assert mixer.preset_combo.currentText() == "Keep me"
    mixer.delete_preset_button.click()
    box = mixer.confirm_box
    assert box.isVisible() and "Keep me" in box.text() and box.defaultButton() == box.button(QMessageBox.StandardButton.No)
    box.button(QMessageBox.StandardButton.No).click()
    assert state.presets.names() == ["Keep me"]
    mixer.delete_preset_button.click()
    mixer.confirm_box.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: state.presets.names() == [], timeout=TIMEOUT)


def test_sweep_refuses_one_adapter_on_both_axes(demo_app, qtbot):
    sweep = demo_app.window.show_view("sweep")
    qtbot.waitUntil(sweep.run_button.isEnabled, timeout=TIMEOUT)
    sweep.prompt.setPlainText("Hi")
    sweep.use_y.setChecked(True)
    sweep.adapter_x.setCurrentIndex(sweep.adapter_x.findText("shout"))
    sweep.adapter_y.setCurrentIndex(sweep.adapter_y.findText("shout"))
    sweep.run()
    assert "Pick two different adapters" in sweep.error.text() and not sweep.collector.running
    assert not sweep.panes


def test_about_shows_the_version(make_app, qtbot):
    from importlib import metadata
    w = make_app().window
    w._about()
    assert metadata.version("loradeck") in w.about_box.text()
    w.about_box.close()


def test_dark_theme_follows_the_system_or_the_switch(make_app, qtbot):
    from desktop_app import theme

    app = make_app()
    qapp = QApplication.instance()
    start_dark = theme.is_dark()
    assert app.state.settings.theme == "system"
    try:
        _switch_themes(app, qapp, start_dark, make_app)
    finally:
        theme.apply(qapp, "system")                     # later tests start as this one did
    assert theme.is_dark() == start_dark


def _switch_themes(app, qapp, start_dark, make_app):
    from desktop_app import theme

    w = app.window
    w.show_settings()
    dlg = w.settings_dialog
    dlg.theme.setCurrentIndex(dlg.theme.findData("dark"))
    dlg.accept()
    assert theme.is_dark() and app.state.settings.theme == "dark"
    w.show_settings()
    w.settings_dialog.theme.setCurrentIndex(w.settings_dialog.theme.findData("light"))
    w.settings_dialog.accept()
    assert not theme.is_dark()
    # Back to the system's: here (the offscreen platform) light, as it started.
    w.show_settings()
    assert w.settings_dialog.theme.currentData() == "light"
    w.settings_dialog.theme.setCurrentIndex(w.settings_dialog.theme.findData("system"))
    w.settings_dialog.accept()
    assert theme.is_dark() == start_dark
    # A system that says "dark" while its palette stays light gets the dark palette.
    monkey = pytest.MonkeyPatch()
    monkey.setattr(theme, "system_prefers_dark", lambda _app: True)
    try:
        theme.apply(qapp, "system")
        assert theme.is_dark()
    finally:
        monkey.undo()
        theme.apply(qapp, "system")
    assert theme.is_dark() == start_dark
    # The choice is applied at the next start, before the window is shown.
    app.state.settings.set("appearance/theme", "dark")
    app.close()
    make_app()
    assert theme.is_dark()
