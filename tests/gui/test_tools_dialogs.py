"""Tools → Convert / Merge on real adapters (the demo's PEFT, Kohya and Ludwig adapters and the demo GGUF
model), through the dialogs and desktop_app.tools_access: progress while they run, cancel, and results
that land — a LoRA GGUF read_adapter reads, a blended PEFT folder in the library, a merged GGUF model."""
from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMenu

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

TIMEOUT = 120000


def open_tool(qtbot, w, text, cls):
    """Tools → <text>, as from the menu bar; returns the dialog it opened."""
    menu = next(m for m in w.menuBar().findChildren(QMenu) if m.title() == "&Tools")
    action = next(a for a in menu.actions() if a.text() == text)
    before = set(w.findChildren(cls))
    action.trigger()
    dlg = next(d for d in w.findChildren(cls) if d not in before)
    qtbot.waitUntil(dlg.isVisible, timeout=TIMEOUT)
    return dlg


def run(qtbot, dlg) -> list[tuple[float, float, str]]:
    """Click the dialog's run button, record the job's progress, wait until it has finished."""
    seen = []
    qtbot.mouseClick(dlg.run_button, Qt.MouseButton.LeftButton)
    assert dlg.running and not dlg.run_button.isEnabled() and dlg.cancel_button.isEnabled()
    # The job reaches the thread pool only once control is back in the event loop: connecting now
    # cannot miss a report.
    dlg.job.signals.progress.connect(lambda d, t, m: seen.append((d, t, m)))
    qtbot.waitUntil(lambda: not dlg.running, timeout=TIMEOUT)
    assert dlg.run_button.isEnabled() and not dlg.cancel_button.isEnabled()
    return seen


def wait_library_source(qtbot, state, source: str):
    qtbot.waitUntil(lambda: any(e.source == source for e in state.library_model.entries()), timeout=TIMEOUT)
    return next(e for e in state.library_model.entries() if e.source == source)


def entry_named(state, name):
    return next(e for e in state.library_model.entries() if e.name == name)


def test_convert_to_gguf_then_cancel(make_app, demo_engine, library_backend_ready, qtbot, tmp_path):
    from adapters_backend.formats.registry import read_adapter
    from desktop_app.widgets.convert_dialog import ConvertDialog

    demo, _ = demo_engine
    app = make_app().start()
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: state.library_model.rowCount() >= 3, timeout=TIMEOUT)

    dlg = open_tool(qtbot, w, "&Convert adapter…", ConvertDialog)
    assert dlg.base.text() == str(demo.demo_model_path())          # the loaded model, by default
    shout = entry_named(state, "shout")
    dlg.adapter.setCurrentIndex(dlg.adapter.findData(str(shout.path)))
    out = tmp_path / "out" / "shout.lora.gguf"
    out.parent.mkdir()
    dlg.output.setText(str(out))
    dlg.outtype.setCurrentText("f32")
    seen = run(qtbot, dlg)
    assert dlg.status.text() == f"Saved {out}.", dlg.status.text()
    assert dlg.progress.value() == dlg.progress.maximum() == 1000
    assert seen and all(t >= d >= 0 for d, t, _m in seen)
    converted = read_adapter(out)
    assert converted.format_id == "gguf" and converted.modules
    assert len(converted.modules) == len(read_adapter(shout.path).modules)
    entry = wait_library_source(qtbot, state, f"local:{out}")
    assert entry.format == "gguf"

    # Cancel: pressed before the job has run a single step, so it stops without writing anything.
    out2 = tmp_path / "out" / "pirate.lora.gguf"
    dlg.adapter.setCurrentIndex(dlg.adapter.findData(str(entry_named(state, "pirate").path)))
    dlg.output.setText(str(out2))
    dlg.run_button.click()
    dlg.cancel_button.click()                  # same event-loop turn: the job has not started yet
    qtbot.waitUntil(lambda: not dlg.running, timeout=TIMEOUT)
    assert dlg.status.text() == "Cancelled." and not out2.exists()
    dlg.close()


def test_blend_and_merge_into_base(make_app, demo_engine, library_backend_ready, qtbot, tmp_path):
    from adapters_backend.core.base_model import load_base_model
    from adapters_backend.formats.registry import read_adapter
    from desktop_app.widgets.merge_dialog import MergeDialog

    demo, _ = demo_engine
    app = make_app().start()
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: state.library_model.rowCount() >= 3, timeout=TIMEOUT)

    # Blend two adapters of different formats (PEFT + Kohya) into one PEFT adapter.
    dlg = open_tool(qtbot, w, "&Merge adapters…", MergeDialog)
    assert dlg.blend.isChecked() and dlg.table.rowCount() == 0       # the demo adapters start switched off
    for name in ("shout", "pirate"):
        dlg.add_combo.setCurrentIndex(dlg.add_combo.findText(name))
        add = next(b for b in dlg.findChildren(type(dlg.run_button)) if b.text() == "Add")
        qtbot.mouseClick(add, Qt.MouseButton.LeftButton)
    assert dlg.table.rowCount() == 2
    dlg.table.cellWidget(1, 1).setValue(0.5)
    shout, pirate = entry_named(state, "shout"), entry_named(state, "pirate")
    assert dlg.entries() == [(str(shout.path), 1.0), (str(pirate.path), 0.5)]
    blend_out = tmp_path / "blends" / "shout-pirate"
    dlg.output.setText(str(blend_out))
    seen = run(qtbot, dlg)
    assert dlg.status.text().startswith(f"Saved {blend_out}") and "library" in dlg.status.text(), dlg.status.text()
    assert seen
    blended = read_adapter(blend_out)
    assert blended.format_id == "peft"
    entry = wait_library_source(qtbot, state, f"local:{blend_out}")
    assert entry.format == "peft"
    qtbot.waitUntil(lambda: entry.id in state.compat and state.compat[entry.id].usable, timeout=TIMEOUT)
    _fn, args = dlg.job_call()
    assert args[3] == state.model.path                  # blends are checked against the loaded model

    # Merge one adapter into the loaded demo GGUF: a new GGUF model file.
    dlg.into_base.setChecked(True)
    assert dlg.output.text().endswith("tiny-deck-demo-merged.gguf")
    dlg.table.removeRow(1)
    merged = tmp_path / "models" / "demo-shout.gguf"
    dlg.output.setText(str(merged))
    seen = run(qtbot, dlg)
    assert dlg.status.text() == f"Saved {merged}. Load it from File → Open GGUF model.", dlg.status.text()
    assert seen
    info = load_base_model(merged)
    demo_info = load_base_model(demo.demo_model_path())
    assert info.kind == "gguf" and (info.n_layers, info.hidden) == (demo_info.n_layers, demo_info.hidden)
    assert Path(merged).stat().st_size > 0.5 * Path(demo.demo_model_path()).stat().st_size
    dlg.close()


@pytest.fixture
def library_backend_ready():
    pytest.importorskip("adapters_backend.library")
    pytest.importorskip("adapters_backend.convert")
    pytest.importorskip("adapters_backend.merge")


def test_save_as_fills_the_output_of_both_tools(make_app, qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog, QPushButton

    from desktop_app.widgets.convert_dialog import ConvertDialog
    from desktop_app.widgets.merge_dialog import MergeDialog

    asked = []

    def save_as(parent, caption, start, filters):
        asked.append((caption, filters))
        return str(tmp_path / f"{len(asked)}.gguf"), filters
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(save_as))
    w = make_app().window
    w.show()
    for text, cls in (("&Convert adapter…", ConvertDialog), ("&Merge adapters…", MergeDialog)):
        dlg = open_tool(qtbot, w, text, cls)
        button = next(b for b in dlg.findChildren(QPushButton) if b.text() == "Save as…")
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        assert dlg.output.text() == str(tmp_path / f"{len(asked)}.gguf")
        dlg.reject()
    assert asked == [("Save GGUF adapter", "GGUF (*.gguf)"), ("Save", "GGUF (*.gguf);;All files (*)")]
