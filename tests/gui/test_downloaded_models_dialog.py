"""File → Downloaded models: the models fetched from the (loopback) Hub are listed with their size; the
loaded one cannot be removed; another goes from the disk and from the model picker."""
from __future__ import annotations

import pytest
from fixtures.fake_hub import fake_hub  # noqa: F401  (pytest fixture)
from PySide6.QtWidgets import QMessageBox

from adapters_backend import hub
from desktop_app.library_access import demo_model

TIMEOUT = 30000


@pytest.fixture
def downloaded(app_env, fake_hub):  # noqa: F811
    """Two GGUF models downloaded from the loopback Hub: the demo model (which llama.cpp can load) and
    another; their paths in the HF cache."""
    fake_hub.add("deck/demo-GGUF", {"demo-Q8_0.gguf": demo_model().read_bytes()}, tags=["gguf"])
    fake_hub.add("deck/other-GGUF", {"other-Q4_K_M.gguf": b"GGUF" + b"\0" * 4000}, tags=["gguf"])
    return {repo: hub.download_files(repo, [name]) / name
            for repo, name in (("deck/demo-GGUF", "demo-Q8_0.gguf"), ("deck/other-GGUF", "other-Q4_K_M.gguf"))}


def rows_of(dialog) -> list[str]:
    return [dialog.model.item(r, 0).text() for r in range(dialog.model.rowCount())]


def remove(qtbot, dialog, repo_id):
    """Select `repo_id`, press Remove… and answer Yes; wait for the outcome in the summary."""
    dialog.view.setCurrentIndex(dialog.model.index(rows_of(dialog).index(repo_id), 0))
    assert dialog.remove_button.isEnabled()
    dialog.remove_button.click()
    assert "other Hugging Face tools" in dialog.confirm.text() and repo_id in dialog.confirm.text()
    before = dialog.summary.text()
    dialog.confirm.button(QMessageBox.StandardButton.Yes).click()
    qtbot.waitUntil(lambda: dialog.summary.text() not in (before, f"Removing {repo_id}…"), timeout=TIMEOUT)


def test_downloaded_models_are_listed_and_removed_but_not_the_loaded_one(make_app, downloaded, qtbot):
    app = make_app()
    app.state.settings.set_last_model(str(downloaded["deck/demo-GGUF"]), "llama.cpp")
    app.state.settings.add_recent_model(str(downloaded["deck/other-GGUF"]), "llama.cpp")
    app.start()
    state, w = app.state, app.window
    assert state.model.path == str(downloaded["deck/demo-GGUF"])
    picker = w.model_picker.combo
    assert picker.findData(str(downloaded["deck/other-GGUF"])) >= 0

    w.show_downloaded_models()
    dialog = w.downloaded_models_dialog
    qtbot.waitUntil(lambda: dialog.model.rowCount() == 2, timeout=TIMEOUT)
    assert sorted(rows_of(dialog)) == ["deck/demo-GGUF", "deck/other-GGUF"]
    assert dialog.summary.text().startswith("2 models, ") and not dialog.remove_button.isEnabled()

    remove(qtbot, dialog, "deck/demo-GGUF")                   # the loaded model
    assert dialog.summary.text().startswith("Not removed: deck/demo-GGUF: it is in use")
    assert downloaded["deck/demo-GGUF"].is_file()

    remove(qtbot, dialog, "deck/other-GGUF")
    qtbot.waitUntil(lambda: rows_of(dialog) == ["deck/demo-GGUF"], timeout=TIMEOUT)
    assert dialog.summary.text().startswith("Removed deck/other-GGUF: ")
    assert not downloaded["deck/other-GGUF"].exists() and downloaded["deck/demo-GGUF"].is_file()
    assert picker.findData(str(downloaded["deck/other-GGUF"])) < 0          # gone from the picker too
    assert state.model is not None and not state.errors.history
