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


@pytest.fixture
def bad_plugins(monkeypatch):
    from pathlib import Path
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "fixtures" / "bad_plugins"))
    reset_default_registry()
    yield
    for name in [m for m in sys.modules if m.startswith("lorabad")]:
        del sys.modules[name]
    reset_default_registry()


def test_dialog_lists_malformed_plugins_and_errors_met_in_this_session(make_app, bad_plugins, qtbot, tmp_path):
    from adapters_backend.errors import AdapterFormatError
    from adapters_backend.formats.registry import read_adapter

    app = make_app()
    app.window.show()
    boom = tmp_path / "x.boom"
    boom.write_bytes(b"boom")
    with pytest.raises(AdapterFormatError, match="bad-read"):
        read_adapter(boom)                        # what a drop of that file does, in this process
    app.window.show_plugins()
    dlg = app.window.plugins_dialog
    qtbot.waitUntil(lambda: bool(dlg.rows), timeout=20000)
    by_name = {r["name"]: r for r in dlg.rows}
    assert not by_name["bad-shape"]["ok"] and not by_name["bad-read"]["ok"]
    texts = dlg.error_texts()
    assert any("'formats' must be a list, not int" in e for e in texts)
    assert any("read of format 'bad.read' raised KeyError" in e for e in texts)
    assert by_name["peft"]["ok"]
