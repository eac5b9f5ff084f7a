"""An adapter that does not fit the loaded model: its install ends with a warning (not a plain
"Done — added"), adding it to the mix is refused with a warning, and the Convert and Merge dialogs
start from adapters that fit."""
from __future__ import annotations

import pytest
from fixtures.small_adapters import write_peft
from PySide6.QtWidgets import QMessageBox

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

TIMEOUT = 60000


@pytest.fixture
def app_with_misfit(make_app, demo_engine, qtbot, tmp_path):
    """The demo app after installing (as a drop does) a PEFT adapter made for a hidden size of 96,
    named to sort first in the library."""
    app = make_app().start()
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: state.library_model.rowCount() == 3 and len(state.compat) == 3, timeout=TIMEOUT)
    folder = write_peft(tmp_path / "aaa-wide-style", hidden=96, seed=4)
    with qtbot.waitSignal(state.adapter_installed, timeout=TIMEOUT) as installed:
        w.drops.install(folder)
    entry, verdict = installed.args
    return app, entry, verdict


def test_installing_a_misfit_says_so(app_with_misfit, qtbot):
    app, entry, verdict = app_with_misfit
    state, w = app.state, app.window
    assert verdict is not None and verdict.status == "incompatible" and "hidden size" in verdict.reason
    # Known at once: greyed in the mixer's list without waiting for the library to be re-checked.
    assert state.compat[entry.id] == verdict
    box = w.install_warning
    assert box.isVisible() and box.icon() == QMessageBox.Icon.Warning
    assert entry.name in box.text() and "does not fit" in box.text() and "hidden size" in box.text()
    act = w.activities.activities()[0]
    assert act.state == "done" and act.warning and act.status_text().startswith("⚠ ")
    assert "does not fit Demo model" in act.status_text()
    assert "does not fit" in w.statusBar().currentMessage()
    # The downloads panel did not pop up for an install.
    assert w._downloads_dock is None or not w._downloads_dock.isVisible()
    box.close()


def test_adding_a_misfit_to_the_mix_is_a_warning(app_with_misfit, qtbot):
    app, entry, _verdict = app_with_misfit
    state, w = app.state, app.window
    library = w.show_view("library")
    assert library.select_adapter(entry.id)
    library.add_button.click()
    box = w.misfit_box
    assert box.isVisible() and box.icon() == QMessageBox.Icon.Warning
    assert box.text().startswith(f"{entry.name} does not fit Demo model: hidden size")
    assert state.mix_model.row_of(entry.id) < 0
    box.close()
    mixer = w.mixer
    row = next(r for r in range(mixer.available.rowCount()) if mixer.available.entry(r).id == entry.id)
    mixer._add_proxy_row(row)
    assert mixer.misfit_box.icon() == QMessageBox.Icon.Warning and mixer.misfit_box.isVisible()
    mixer.misfit_box.close()


def test_convert_and_merge_start_from_adapters_that_fit(app_with_misfit, qtbot):
    from desktop_app.widgets.convert_dialog import MISFIT_MARK, ConvertDialog
    from desktop_app.widgets.merge_dialog import MergeDialog

    app, entry, _verdict = app_with_misfit
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: state.library_model.rowCount() == 4, timeout=TIMEOUT)
    # The library lists the misfit first.
    current = state.library_model.entries()
    state.library_model.set_entries([])
    state.library_model.set_entries([next(e for e in current if e.id == entry.id)]
                                    + [e for e in current if e.id != entry.id])
    assert state.library_model.entries()[0].id == entry.id
    convert = ConvertDialog(state, w)
    qtbot.addWidget(convert)
    current = state.library_model.entries()
    fits = {str(e.path) for e in current if e.id != entry.id}
    assert convert.adapter.currentData() in fits
    texts = [convert.adapter.itemText(i) for i in range(convert.adapter.count())]
    assert texts[-1].endswith(MISFIT_MARK) and entry.name in texts[-1]
    assert not any(t.endswith(MISFIT_MARK) for t in texts[:-1])
    merge = MergeDialog(state, w)
    qtbot.addWidget(merge)
    assert merge.add_combo.currentData() in fits
    assert merge.add_combo.itemText(merge.add_combo.count() - 1) == entry.name
