"""Drag and drop onto the window (onto any part of it, text boxes included): an adapter folder is
installed and shows up in the library at once; a malicious zip is refused with the exact reason and
leaves the library as it was; a GGUF base model is offered as the model to load."""
from __future__ import annotations

import importlib.util
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

TIMEOUT = 60000


@pytest.fixture
def library_backend():
    if importlib.util.find_spec("adapters_backend.library") is None:
        pytest.skip("the adapter library backend (adapters_backend.library) is not installed yet")


def drop_on(widget, paths: list[Path]) -> bool:
    """Drag the files over `widget` and drop them, as a file manager does. Returns whether the
    drag was accepted."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPoint(widget.width() // 2, widget.height() // 2)
    enter = QDragEnterEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(QPointF(pos), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return drop.isAccepted()


def new_peft_adapter(demo, dest: Path, seed: int) -> Path:
    """A fresh, valid PEFT adapter for the demo model (the demo's shape, new random factors)."""
    from safetensors.numpy import load_file, save_file

    src = next(a.path for a in demo.demo_adapters() if a.format == "peft")
    dest.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    tensors = {k: (rng.standard_normal(v.shape) * 0.02).astype(np.float32)
               for k, v in load_file(str(src / "adapter_model.safetensors")).items()}
    save_file(tensors, str(dest / "adapter_model.safetensors"))
    cfg = json.loads((src / "adapter_config.json").read_text())
    (dest / "adapter_config.json").write_text(json.dumps(cfg))
    return dest


def evil_zip(demo, dest: Path) -> Path:
    src = next(a.path for a in demo.demo_adapters() if a.format == "peft")
    with zipfile.ZipFile(dest, "w") as zf:
        zf.write(src / "adapter_config.json", "adapter/adapter_config.json")
        zf.write(src / "adapter_model.safetensors", "adapter/adapter_model.safetensors")
        zf.writestr("../../escaped.txt", "this must never be written outside the archive")
    return dest


def test_drop_folder_and_malicious_zip(make_app, demo_engine, library_backend, qtbot, tmp_path):
    demo, _ = demo_engine
    app = make_app().start()
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: state.library_model.rowCount() >= 3, timeout=TIMEOUT)
    before = [e.id for e in state.library_model.entries()]

    # A folder dropped on the message box (a text box: it must not swallow the drop).
    folder = new_peft_adapter(demo, tmp_path / "drops" / "my-style", seed=3)
    with qtbot.waitSignal(w.drops.installed, timeout=TIMEOUT) as got:
        assert drop_on(w.chat.prompt.viewport(), [folder])
    assert got.args[0] == str(folder)
    assert w.chat.prompt.toPlainText() == ""                            # no path pasted as text
    try:
        qtbot.waitUntil(lambda: state.library_model.rowCount() == len(before) + 1, timeout=TIMEOUT)
    except Exception as exc:  # say what the app saw, not only that time ran out
        rows = [e.name for e in state.library_model.entries()]
        raise AssertionError(f"library rows {rows} (before: {before}); errors: {state.errors.history}") from exc
    new = [e for e in state.library_model.entries() if e.id not in before][0]
    assert new.format == "peft"
    act = w.activities.activities()[0]
    assert act.kind == "install" and act.state == "done"
    # …and it can join the mix at once.
    try:
        qtbot.waitUntil(lambda: new.id in state.compat or not state.compat, timeout=TIMEOUT)
    except Exception as exc:
        job = state._compat_job
        raise AssertionError(f"compat verdicts for {sorted(state.compat)}, new {new.id}, model "
                             f"{state.model and state.model.path}, compat job done="
                             f"{getattr(job, 'done', None)}; errors: {state.errors.history}") from exc
    assert state.add_to_mix(new.id)

    # A zip with a path-traversal entry: refused with the reason, library unchanged, nothing escaped.
    bad = evil_zip(demo, tmp_path / "drops" / "evil.zip")
    n = state.library_model.rowCount()
    with qtbot.waitSignal(w.drops.rejected, timeout=TIMEOUT) as rejected:
        assert drop_on(w.chat.transcript, [bad])
    assert rejected.args[0] == str(bad)
    assert "outside" in rejected.args[1] or "traversal" in rejected.args[1]
    assert any("traversal" in msg or "outside" in msg for _ctx, msg in state.errors.history)
    assert state.library_model.rowCount() == n
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path.parent / "escaped.txt").exists()
    assert w.activities.activities()[0].state == "failed"

    # Something that is not an adapter at all: refused before any work, with what we accept.
    note = tmp_path / "drops" / "notes.txt"
    note.write_text("hello")
    with qtbot.waitSignal(w.drops.rejected, timeout=TIMEOUT) as rejected:
        drop_on(w.mixer, [note])
    assert ".safetensors" in rejected.args[1]


def test_drop_base_gguf_offers_to_load_it(make_app, demo_engine, qtbot, tmp_path):
    demo, _ = demo_engine
    app = make_app().start()
    state, w = app.state, app.window
    model = tmp_path / "another-model.gguf"
    shutil.copy(demo.demo_model_path(), model)
    with qtbot.waitSignal(w.drops.model_offered, timeout=TIMEOUT):
        assert drop_on(w.chat.scroll.viewport(), [model])
    box = w.drops.question_box
    assert "base model" in box.text()
    qtbot.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: state.model is not None and state.model.path == str(model), timeout=TIMEOUT)
    assert not state.is_demo_loaded()


def test_dropped_pickle_adapter_runs_nothing_from_its_folder(make_app, demo_engine, library_backend, qtbot,
                                                             tmp_path, monkeypatch):
    """A legacy adapter_model.bin with a torch.py beside it, dropped while the app's working folder and
    PYTHONPATH point at that folder: converted by the isolated child, the torch.py never runs."""
    from fixtures.pickle_traps import booby_trapped_pickle_adapter

    markers = tmp_path / "markers"
    folder = booby_trapped_pickle_adapter(tmp_path / "drops" / "old-style", markers)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("PYTHONPATH", str(folder))
    app = make_app().start()
    w = app.window
    outcome = []
    w.drops.installed.connect(lambda path, entry: outcome.append(("installed", path, entry)))
    w.drops.rejected.connect(lambda path, reason: outcome.append(("rejected", path, reason)))
    assert drop_on(w.mixer, [folder])
    qtbot.waitUntil(lambda: bool(outcome), timeout=TIMEOUT)
    assert outcome[0][0] == "installed", outcome
    assert outcome[0][1] == str(folder) and outcome[0][2].format == "peft"
    assert not list(markers.iterdir()), [p.name for p in markers.iterdir()]
