"""An adapter installed, renamed or removed from a terminal (`loradeck install`, `rename`, `remove`)
while the app is open shows in the app when its window becomes active again (it did only after a
restart, and a removed adapter stayed in the mix until its next answer failed)."""
from __future__ import annotations

import subprocess
import sys

from PySide6.QtWidgets import QWidget

from tests.gui.test_drop_install import new_peft_adapter

TIMEOUT = 60000


def loradeck(*args: str) -> None:
    out = subprocess.run([sys.executable, "-m", "adapters_backend.cli", *args], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr


def switch_away_and_back(qtbot, window) -> None:
    other = QWidget()
    qtbot.addWidget(other)
    other.show()
    other.activateWindow()
    qtbot.waitUntil(other.isActiveWindow, timeout=TIMEOUT)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=TIMEOUT)


def test_install_and_remove_from_a_terminal_show_when_the_window_is_active_again(
        make_app, demo_engine, qtbot, tmp_path):
    demo, _ = demo_engine
    app = make_app().start()
    state, w = app.state, app.window
    qtbot.waitUntil(lambda: state.library_model.rowCount() == 3, timeout=TIMEOUT)
    shout = next(e for e in state.library_model.entries() if e.name == "shout")
    assert state.add_to_mix(shout.id) or any(e.adapter_id == shout.id for e in state.mix_model.entries())
    switch_away_and_back(qtbot, w)          # the first run's index was written after the app read it
    qtbot.waitUntil(lambda: state._library_applied >= state._library_seq, timeout=TIMEOUT)   # listings done
    listed = []
    state.library_changed.connect(lambda: listed.append(1))
    switch_away_and_back(qtbot, w)
    qtbot.wait(300)
    assert listed == []                                  # nothing changed: nothing re-read

    loradeck("install", str(new_peft_adapter(demo, tmp_path / "from-terminal", seed=5)))
    loradeck("remove", "shout")
    loradeck("rename", "pirate", "Captain")
    assert state.library_model.rowCount() == 3           # the app has not looked yet
    switch_away_and_back(qtbot, w)
    qtbot.waitUntil(lambda: "from-terminal" in {e.name for e in state.library_model.entries()}, timeout=TIMEOUT)
    assert "shout" not in {e.name for e in state.library_model.entries()}
    assert shout.id not in {e.adapter_id for e in state.mix_model.entries()}
    assert [r.name_label.full_text() for r in w.mixer.rows] == ["Captain", "reverse"]
