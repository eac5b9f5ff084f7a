"""The app in the backend's own types: library entries (the demo adapters' provenance), one verdict
mapping everywhere (a partial fit is usable and shown with its reason), mix presets in the one file
format `loradeck serve` also reads."""
from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from adapters_backend.core.compat import Verdict
from adapters_backend.demo import DEMO_SOURCE, demo_adapters, is_demo_source
from adapters_backend.engines.base import ActiveAdapter
from adapters_backend.library import Library, LibraryEntry
from adapters_backend.mix_presets import SCHEMA, PresetStore
from desktop_app import library_access

TIMEOUT = 60000


def test_demo_adapters_are_registered_as_built_in(app_env, demo_engine):
    entries, demo_ids = library_access.startup_entries(True)
    assert all(isinstance(e, LibraryEntry) for e in entries)
    assert sorted(e.name for e in entries) == sorted(a.name for a in demo_adapters())
    assert sorted(demo_ids) == sorted(e.id for e in entries)
    assert {e.source for e in entries} == {DEMO_SOURCE}
    assert {e.source for e in Library().list()} == {DEMO_SOURCE}      # stored so, not only shown so


def test_demo_adapters_installed_from_their_files_show_as_built_in(app_env, demo_engine):
    """Libraries made before the demo had its own provenance recorded "local:<the demo file>"."""
    shout = next(a for a in demo_adapters() if a.name == "shout")
    stored = Library().install(str(shout.path), name="shout")
    assert stored.source == f"local:{shout.path}"
    [shown] = library_access.list_entries()
    assert shown.source == DEMO_SOURCE and shown.id == stored.id and shown.path == stored.path
    # The same adapter copied elsewhere is the user's own file: its source stays as it is.
    assert not is_demo_source("local:/home/me/adapters/shout-peft")
    assert is_demo_source("local:/opt/loradeck/adapters_backend/demo_assets/adapters/shout-peft")   # older layout
    assert is_demo_source("local:C:\\LoRA Deck\\app\\adapters_backend\\demo\\assets\\adapters\\pirate.safetensors")
    assert not is_demo_source("hub:alice/shout@abc")


@pytest.fixture
def demo_app(make_app, demo_engine, qtbot):
    app = make_app().start()
    state = app.state
    qtbot.waitUntil(lambda: state.library_model.rowCount() == 3 and len(state.compat) == 3, timeout=TIMEOUT)
    return app


def test_a_partial_fit_is_usable_everywhere_and_says_why(demo_app, qtbot):
    state, w = demo_app.state, demo_app.window
    by_name = {e.name: e for e in state.library_model.entries()}
    partial = Verdict("partial", "partially compatible (3/4 modules apply with llama.cpp): 1 of 4 modules are skipped")
    state.compat = {by_name["shout"].id: partial, by_name["pirate"].id: Verdict.unreadable("bad header"),
                    by_name["reverse"].id: state.compat[by_name["reverse"].id]}
    state.compat_changed.emit()
    for e in state.mix_model.entries():
        state.mix_model.remove_adapter(e.adapter_id)

    available = w.mixer.available
    rows = {available.entry(r).name: available.index(r, 0) for r in range(available.rowCount())}
    enabled = {n: bool(available.flags(i) & Qt.ItemFlag.ItemIsEnabled) for n, i in rows.items()}
    assert enabled == {"shout": True, "pirate": False, "reverse": True}
    assert partial.reason in available.data(rows["shout"], Qt.ItemDataRole.ToolTipRole)
    assert available.data(rows["pirate"], Qt.ItemDataRole.DisplayRole).endswith("— incompatible")
    assert "cannot be read: bad header" in available.data(rows["pirate"], Qt.ItemDataRole.ToolTipRole)

    sweep = w.sweep
    assert sorted(sweep.adapter_x.itemText(i) for i in range(sweep.adapter_x.count())) == ["reverse", "shout"]

    library = w.library
    assert library.select_adapter(by_name["shout"].id)
    summary = {library.summary.itemAt(r, library.summary.ItemRole.LabelRole).widget().text():
               library.summary.itemAt(r, library.summary.ItemRole.FieldRole).widget().text()
               for r in range(library.summary.rowCount())}
    assert summary["With this model"] == partial.reason
    assert summary["Source"] == DEMO_SOURCE
    assert library.select_adapter(by_name["pirate"].id)
    assert library.summary.itemAt(library.summary.rowCount() - 1, library.summary.ItemRole.FieldRole).widget() \
        .text() == "incompatible — cannot be read: bad header"

    hub = w.hub
    hub._on_details(hub._details_job, {"repo_id": "a/b", "files": [], "compat": partial})
    assert hub.d_verdict.text() == f"✔ Partly fits the loaded model: {partial.reason}"
    assert hub.download_button.isEnabled()
    hub._on_details(hub._details_job, {"repo_id": "a/b", "files": [], "compat": Verdict.from_json(
        {"verdict": "incompatible", "summary": "incompatible: hidden size 64, base 32"})})
    assert hub.d_verdict.text().startswith("✘") and not hub.download_button.isEnabled()

    assert state.add_to_mix(by_name["shout"].id) and not state.add_to_mix(by_name["pirate"].id)


def test_presets_in_the_shared_file_format(demo_app, qtbot):
    state = demo_app.state
    by_name = {e.name: e for e in state.library_model.entries()}
    store = PresetStore()
    # A file as earlier versions of the app wrote it (the entries' fields, layer ranges as lists).
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text(json.dumps({"schema": SCHEMA, "presets": {"Loud pirate": [
        {"adapter_id": by_name["shout"].id, "name": "shout", "path": "/moved/away", "strength": 0.7,
         "enabled": True, "layer_strengths": [[0, 1, 0.5]]},
        {"adapter_id": by_name["pirate"].id, "name": "pirate", "path": "", "strength": 5.0, "enabled": False,
         "layer_strengths": []},
        {"adapter_id": "gone", "name": "removed since", "path": "/x", "strength": 1.0, "enabled": True}]}}))
    assert state.presets.names() == ["Loud pirate"]
    assert state.apply_preset("Loud pirate") == ["removed since"]
    mix = state.mix_model.entries()
    assert [(e.name, e.path, e.strength, e.enabled, e.layer_strengths) for e in mix] == [
        ("shout", str(by_name["shout"].path), 0.7, True, ((0, 1, 0.5),)),
        ("pirate", str(by_name["pirate"].path), 2.0, False, ())]                  # clamped to the range
    assert state.engine_mix() == [ActiveAdapter(str(by_name["shout"].path), 0.7, ((0, 1, 0.5),), name="shout")]
    assert state.resolve_mix("preset:Loud pirate") == (state.engine_mix(), "shout +0.70")

    state.mix_model.set_strength(0, 1.25)
    state.save_preset("Louder")
    saved = json.loads(store.path.read_text())
    assert saved["schema"] == SCHEMA and sorted(saved["presets"]) == ["Loud pirate", "Louder"]
    assert saved["presets"]["Louder"][0] == {"adapter_id": by_name["shout"].id, "name": "shout",
                                             "path": str(by_name["shout"].path), "strength": 1.25, "enabled": True,
                                             "layer_strengths": [[0, 1, 0.5]]}
    assert store.get("Louder") == state.mix_model.entries()        # what `loradeck serve` reads
    state.delete_preset("Loud pirate")
    assert state.presets.names() == ["Louder"]
