"""A/B compare and the strength sweep: every pane shows exactly what the engine answers for that
mix with the same seed."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

# Qt warnings fail the test, except the offscreen platform's note about size hints of dialogs.
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

TIMEOUT = 60000
PROMPT = "What does a cow say?"


def _greedy(panel, max_tokens=24):
    panel.temperature.setValue(0.0)
    panel.max_tokens.setValue(max_tokens)
    panel.seed.setValue(11)


def test_compare_mix_against_base(make_app, direct_reply, qtbot):
    app = make_app().start()
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: len(w.mixer.rows) == 3, timeout=TIMEOUT)
    w.mixer.rows[0].switch.setChecked(True)                     # shout on at 1.0
    compare = w.show_view("compare")
    compare.prompt.setPlainText(PROMPT)
    compare.mix_a.setCurrentIndex(compare.mix_a.findData("current"))
    compare.mix_b.setCurrentIndex(compare.mix_b.findData("base"))
    _greedy(compare.sampling)
    qtbot.mouseClick(compare.run_button, Qt.MouseButton.LeftButton)
    assert compare.collector.running and not compare.run_button.isEnabled()
    qtbot.waitUntil(lambda: not compare.collector.running, timeout=TIMEOUT)
    params = compare.sampling.params()
    msgs = [("user", PROMPT)]
    a = direct_reply(state.settings, state.model.path, state.engine_mix(), msgs, params)
    b = direct_reply(state.settings, state.model.path, [], msgs, params)
    assert compare.pane_a.content() == a
    assert compare.pane_b.content() == b
    assert a != b
    assert "shout" in compare.pane_a.title.text() and "base" in compare.pane_b.title.text()
    assert "tok/s" in compare.pane_a.info.text()


def test_sweep_one_adapter_and_grid(make_app, direct_reply, qtbot):
    app = make_app().start()
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: state.library_model.rowCount() == 3, timeout=TIMEOUT)
    sweep = w.show_view("sweep")
    qtbot.waitUntil(lambda: sweep.run_button.isEnabled(), timeout=TIMEOUT)
    sweep.prompt.setPlainText(PROMPT)
    _greedy(sweep.sampling)
    sweep.adapter_x.setCurrentIndex(sweep.adapter_x.findText("shout"))
    sweep.strengths_x.setText("0, 0.5, 1")
    qtbot.mouseClick(sweep.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not sweep.collector.running, timeout=TIMEOUT)
    assert len(sweep.panes) == 3
    shout = state.library_model.entry_by_id(sweep.adapter_x.currentData())
    from adapters_backend.engines.base import ActiveAdapter
    params, msgs = sweep.sampling.params(), [("user", PROMPT)]
    base = direct_reply(state.settings, state.model.path, [], msgs, params)
    texts = [p.content() for p in sweep.panes]
    for s, text in zip((0.0, 0.5, 1.0), texts):
        assert text == direct_reply(state.settings, state.model.path, [ActiveAdapter(str(shout.path), s)],
                                    msgs, params)
    assert texts[0] == base                                   # strength 0 is the base model
    assert texts[2] != base

    # A two-adapter grid: 2 × 2 cells, in row-major order.
    sweep.use_y.setChecked(True)
    sweep.adapter_y.setCurrentIndex(sweep.adapter_y.findText("pirate"))
    sweep.strengths_x.setText("0, 1")
    sweep.strengths_y.setText("0, 1")
    sweep.run()
    qtbot.waitUntil(lambda: not sweep.collector.running, timeout=TIMEOUT)
    assert len(sweep.panes) == 4
    pirate = state.library_model.entry_by_id(sweep.adapter_y.currentData())
    cell = sweep.panes[3]                                      # shout 1, pirate 1
    assert cell.content() == direct_reply(state.settings, state.model.path,
                                          [ActiveAdapter(str(shout.path), 1.0), ActiveAdapter(str(pirate.path), 1.0)],
                                          msgs, params)
    # Bad strengths are refused with a reason, nothing runs.
    sweep.strengths_x.setText("0, lots")
    sweep.run()
    assert "lots" in sweep.error.text() and not sweep.collector.running
