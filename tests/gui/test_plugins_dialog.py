"""The plugins dialog lists every plugin and shows a broken one with its error; the app still starts."""
from __future__ import annotations

import sys

import pytest

from adapters_backend.plugins.manager import GROUP, reset_default_registry

# Qt warnings fail the test, except the offscreen platform's note about size hints of dialogs.
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]


@pytest.fixture
def broken_plugin(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "broken_gui_plugin").mkdir(parents=True)
    (site / "broken_gui_plugin" / "__init__.py").write_text("raise RuntimeError('the flux capacitor is missing')\n")
    info = site / "broken_gui_plugin-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-gui-plugin\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[{GROUP}]\nbroken = broken_gui_plugin:MANIFEST\n")
    monkeypatch.syspath_prepend(str(site))
    reset_default_registry()
    yield
    sys.modules.pop("broken_gui_plugin", None)
    reset_default_registry()


def test_broken_plugin_shown_in_dialog(make_app, broken_plugin, qtbot):
    app = make_app()
    app.window.show()
    app.window.show_plugins()
    dlg = app.window.plugins_dialog
    qtbot.waitUntil(lambda: bool(dlg.rows), timeout=20000)
    by_name = {r["name"]: r for r in dlg.rows}
    assert not by_name["broken"]["ok"]
    assert any("flux capacitor" in e for e in dlg.error_texts())
    assert by_name["peft"]["ok"] or by_name["peft"]["errors"]          # built-ins listed too
    assert "broken" in dlg.summary.text()
    # The tree shows the error text as a child row of the broken plugin.
    model = dlg.model
    texts = []
    for r in range(model.rowCount()):
        parent = model.index(r, 0)
        for c in range(model.rowCount(parent)):
            texts.append(model.index(c, 0, parent).data())
    assert any("flux capacitor" in (t or "") for t in texts)
