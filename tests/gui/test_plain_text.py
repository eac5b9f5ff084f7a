"""Text from outside LoRA Deck is shown as written, never laid out as HTML (desktop_app/plain_text.py).

Qt lays out a label, message box or tooltip as rich text when its first line holds a tag, and nested
tables make that layout exponential: an adapter, model or chat named `<table><tr><td>` × 20 froze the
GUI thread for minutes (× 16, a file name, for 8 s). Here hostile text goes in the way a user's day brings it (a renamed adapter, a
model file's name, a chat about HTML, a broken file dropped on the window, a Hub model card), and no
widget may show it as markup.
"""
from __future__ import annotations

import shutil
import time

import pytest
from fixtures.fake_hub import fake_hub  # noqa: F401  (pytest fixture)
from fixtures.small_adapters import write_peft
from PySide6.QtCore import QModelIndex, QPoint, Qt
from PySide6.QtGui import Qt as QtGui
from PySide6.QtWidgets import QAbstractItemView, QApplication, QLabel, QMessageBox, QToolTip

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints", r"raise\(\)")]

TIMEOUT = 60000
MARK = "<b>HOSTILE"                    # a tag Qt's guess takes for HTML; "</b>" cannot be in a file name
BOMB = "<table><tr><td>" * 20 + "x"    # laid out as HTML, this takes hours


def _rich(text: str, fmt=Qt.TextFormat.AutoText) -> bool:
    return fmt == Qt.TextFormat.RichText or (fmt == Qt.TextFormat.AutoText and QtGui.mightBeRichText(text))


def _tooltips(view: QAbstractItemView):
    model = view.model()
    if model is None:
        return
    todo = [QModelIndex()]
    while todo:
        parent = todo.pop()
        try:
            columns = model.columnCount(parent)
        except TypeError:                     # a list model (Qt makes its columnCount private)
            columns = 1
        for row in range(model.rowCount(parent)):
            for col in range(columns):
                index = model.index(row, col, parent)
                yield index, model.data(index, Qt.ItemDataRole.ToolTipRole)
            todo.append(model.index(row, 0, parent))


def hostile_text_seen() -> tuple[list[str], list[str]]:
    """(where the hostile text is shown as written, where it is laid out as markup), over every widget."""
    shown, markup = [], []

    def check(where: str, text, rich: bool) -> None:
        if not isinstance(text, str) or "HOSTILE" not in text:
            return
        (markup if rich and MARK in text else shown).append(f"{where}: {text[:120]!r}")

    for w in QApplication.allWidgets():
        name = f"{type(w).__name__} {w.objectName() or w.accessibleName()}".strip()
        if isinstance(w, QLabel):
            check(name, w.text(), _rich(w.text(), w.textFormat()))
        check(f"{name} tooltip", w.toolTip(), _rich(w.toolTip()))
        if isinstance(w, QAbstractItemView):
            for index, tip in _tooltips(w):
                check(f"{name} row {index.row()} tooltip", tip, _rich(tip) if isinstance(tip, str) else False)
    return shown, markup


@pytest.mark.timeout(300, method="thread")      # a regression hangs in Qt's layout: end the run, loudly
def test_nested_tables_cost_nothing_to_show(qtbot):
    from desktop_app.plain_text import message_box, plain_label, plain_tip
    from desktop_app.widgets.elided_label import ElidedLabel

    t0 = time.perf_counter()
    label = plain_label(BOMB)
    elided = ElidedLabel(BOMB)                  # shortened: its tooltip holds the whole text
    for w in (label, elided):
        qtbot.addWidget(w)
        w.show()
    elided.resize(80, 20)
    box = message_box(QMessageBox.Icon.Warning, "Cannot install", f"{BOMB}.safetensors is not an adapter",
                      QMessageBox.StandardButton.Ok)
    qtbot.addWidget(box)
    box.open()
    QToolTip.showText(QPoint(10, 10), elided.toolTip())
    QApplication.processEvents()
    elapsed = time.perf_counter() - t0
    QToolTip.hideText()
    assert elapsed < 5, f"showing the text took {elapsed:.1f} s"
    assert label.text() == BOMB and elided.is_elided() and BOMB in box.text()
    assert plain_tip("a <b> tag") != "a <b> tag" and plain_tip("no tag here") == "no tag here"


def test_names_messages_and_errors_show_as_written(make_app, demo_engine, qtbot, tmp_path):
    app = make_app().start()
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: state.library_model.rowCount() == 3 and len(w.mixer.rows) == 3, timeout=TIMEOUT)

    # A model file whose name is markup.
    demo, _factory = demo_engine
    model = tmp_path / f"{MARK} model.gguf"
    shutil.copyfile(demo.demo_model_path(), model)
    with qtbot.waitSignal(state.model_changed, timeout=TIMEOUT):
        state.load_model(str(model), "llama.cpp")
    assert state.model is not None and state.model.path == str(model), state.errors.history

    # An adapter renamed to markup, in the mix, the library's details and a sweep's grid.
    pirate = next(e for e in state.library_model.entries() if e.name == "pirate")
    state.rename_adapter(pirate.id, f"{MARK} pirate")
    qtbot.waitUntil(lambda: state.library_model.entry_by_id(pirate.id).name == f"{MARK} pirate", timeout=TIMEOUT)
    library = w.show_view("library")
    assert library.select_adapter(pirate.id)
    sweep = w.show_view("sweep")
    qtbot.waitUntil(sweep.run_button.isEnabled, timeout=TIMEOUT)
    sweep.prompt.setPlainText("Hi")
    sweep.sampling.max_tokens.setValue(2)
    sweep.adapter_x.setCurrentIndex(sweep.adapter_x.findText("shout"))
    sweep.strengths_x.setText("0, 1")
    sweep.use_y.setChecked(True)
    sweep.adapter_y.setCurrentIndex(sweep.adapter_y.findText(f"{MARK} pirate"))
    sweep.strengths_y.setText("1")
    sweep.run()
    qtbot.waitUntil(lambda: not sweep.collector.running, timeout=TIMEOUT)
    assert len(sweep.panes) == 2

    # A chat about HTML: its title comes from the first message.
    chat = w.show_view("chat")
    chat.sampling.max_tokens.setValue(2)
    chat.prompt.setPlainText(f"{MARK} what does <table> do?")
    chat.send()
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)

    # A broken file dropped on the window: the error names it.
    bad = tmp_path / f"{MARK}.safetensors"
    bad.write_bytes(b"not an adapter")
    state.errors.show_dialogs = True
    w.drops.handle_paths([bad])
    qtbot.waitUntil(lambda: any("HOSTILE" in m for _c, m in state.errors.history), timeout=TIMEOUT)
    qtbot.waitUntil(lambda: any(isinstance(b, QMessageBox) and b.isVisible() and "HOSTILE" in b.text()
                                for b in QApplication.topLevelWidgets()), timeout=TIMEOUT)

    shown, markup = hostile_text_seen()
    assert not markup, "\n".join(markup)
    headers = [lab.text() for lab in sweep.findChildren(QLabel) if "pirate" in lab.text()]
    assert headers and all("&lt;b&gt;HOSTILE pirate" in h for h in headers), headers


@pytest.mark.timeout(300, method="thread")
def test_a_hub_model_card_shows_as_written(make_app, fake_hub, qtbot, tmp_path):  # noqa: F811
    files = {p.name: p.read_bytes() for p in write_peft(tmp_path / "a").iterdir()}
    fake_hub.add("deck/odd-card", files, tags=["peft", "lora"], library_name="peft",
                 card={"license": f"{MARK} licence {BOMB}", "library_name": "peft"})
    # The model loaded first: a model that finishes loading later has the selection's details read
    # again (its verdict changes), which empties the pane between the wait below and the look at it.
    app = make_app().start()
    hub_view = app.window.show_view("hub")
    hub_view.for_base.setChecked(False)
    hub_view.query.setText("odd")
    hub_view.search()
    qtbot.waitUntil(lambda: hub_view.results.rowCount() == 1, timeout=TIMEOUT)
    hub_view.table.setCurrentIndex(hub_view.results.index(0, 0))
    qtbot.waitUntil(lambda: hub_view._details is not None, timeout=TIMEOUT)
    QApplication.processEvents()
    shown, markup = hostile_text_seen()
    assert not markup, "\n".join(markup)
    assert any("licence" in s for s in shown), shown


def test_a_servers_adapter_names_show_as_written_in_the_model_note(make_app, demo_engine, qtbot):
    """The note above the chat is rich text (the demo's note has bold words); a server's note lists the
    adapters it was started with, named by whoever runs it."""
    from remote.fake_servers import FakeVllm

    app = make_app().start()                   # the demo first
    state, chat = app.state, app.window.chat
    with FakeVllm() as server:
        server.loras = {f"{MARK} lora": "/srv/adapters/odd"}
        with qtbot.waitSignal(state.model_changed, timeout=TIMEOUT):
            state.load_model(server.url, "vllm")
        assert state.model is not None and state.model.engine == "vllm", state.errors.history
        qtbot.waitUntil(lambda: "HOSTILE" in chat.banner.text(), timeout=TIMEOUT)
        shown, markup = hostile_text_seen()
        assert not markup, "\n".join(markup)
        assert "Adapters on the server: &lt;b&gt;HOSTILE lora." in chat.banner.text()
