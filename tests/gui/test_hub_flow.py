"""The Hub tab against the loopback Hub (tests/fixtures/fake_hub.py): the search defaults to adapters for
the loaded base model, the details pane gives the compatibility verdict before downloading, a download
shows its progress in the downloads panel, can be cancelled and resumed, survives a connection reset in
the middle of a file, and the installed adapter is in the library at once, ready for the mix."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fixtures.black_holes import full_backlog  # noqa: F401  (pytest fixture)
from fixtures.fake_hub import fake_hub  # noqa: F401  (pytest fixture)
from fixtures.small_adapters import write_peft
from fixtures.tiny_adapters import tiny_adapters  # noqa: F401  (pytest fixture)
from fixtures.tiny_gguf import tiny_models  # noqa: F401  (pytest fixture)
from PySide6.QtCore import Qt

pytestmark = [pytest.mark.qt_log_level_fail("WARNING"), pytest.mark.qt_log_ignore("propagateSizeHints")]

TIMEOUT = 120000
BASE_ID = "tiny-org/tiny-llama"
WEIGHTS = "adapter_model.safetensors"


def files_of(folder) -> dict[str, bytes]:
    out = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    out["README.md"] = b"---\nlibrary_name: peft\nlicense: apache-2.0\n---\n# adapter\n"
    return out


@pytest.fixture
def gui_hub(app_env, fake_hub, tiny_models, tiny_adapters, tmp_path):  # noqa: F811
    """The fake Hub (started after app_env, so it is online) with adapters for the tiny Llama, and a
    copy of that model whose config names its Hub id (what the browser's default filter reads)."""
    tags = ["peft", "lora", "safetensors", f"base_model:adapter:{BASE_ID}", "license:apache-2.0"]
    card = {"base_model": BASE_ID, "license": "apache-2.0", "library_name": "peft"}
    src = tmp_path / "repos"
    fake_hub.add("deck/tiny-style", files_of(tiny_adapters.make("llama", "lora")), tags=tags, card=card,
                 library_name="peft", downloads=300)
    # ~1.8 MB, so a throttled download is still running when Cancel is clicked.
    all_modules = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    fake_hub.add("deck/big-lora", files_of(write_peft(src / "big", r=256, targets=all_modules, seed=5)),
                 tags=tags, card=card, library_name="peft", downloads=200)
    fake_hub.add("deck/wide-lora", files_of(write_peft(src / "wide", hidden=96, seed=6)), tags=tags, card=card,
                 library_name="peft", downloads=100)
    fake_hub.add("other/unrelated-lora", files_of(write_peft(src / "other", seed=7)), tags=["peft", "lora"],
                 library_name="peft", downloads=5000)
    model = tmp_path / "tiny-llama"
    shutil.copytree(tiny_models.hf("llama"), model)
    cfg = json.loads((model / "config.json").read_text())
    cfg["_name_or_path"] = BASE_ID
    (model / "config.json").write_text(json.dumps(cfg))
    fake_hub.model_dir = model
    return fake_hub


def select_repo(qtbot, hub_view, repo_id):
    rows = [hub_view.results.result(r)["repo_id"] for r in range(hub_view.results.rowCount())]
    hub_view.table.setCurrentIndex(hub_view.results.index(rows.index(repo_id), 0))
    qtbot.waitUntil(lambda: hub_view._details is not None and hub_view._details["repo_id"] == repo_id,
                    timeout=TIMEOUT)


def weight_gets(hub, repo_id):
    return [h.get("Range") or h.get("range") for m, p, h in hub.requests
            if m == "GET" and p.startswith(f"/{repo_id}/resolve/") and p.endswith(WEIGHTS)]


def test_search_verdict_download_cancel_resume_reset(make_app, demo_engine, gui_hub, qtbot):
    hub = gui_hub
    app = make_app().start()
    state, w = app.state, app.window
    with qtbot.waitSignal(state.model_changed, timeout=TIMEOUT):
        w.model_picker.load_path(str(hub.model_dir))
    assert state.model and state.model.engine == "torch", state.errors.history
    library_before = {e.id for e in state.library_model.entries()}

    # The Hub tab: the search is for adapters made for the loaded model, by default.
    qtbot.mouseClick(w.tabs.tabBar(), Qt.MouseButton.LeftButton, pos=w.tabs.tabBar().tabRect(4).center())
    view = w.hub
    assert w.tabs.currentIndex() == 4
    qtbot.waitUntil(view.isVisible, timeout=TIMEOUT)     # built on first use, shown by its layout (queued)
    qtbot.waitUntil(lambda: view.base_id.text() == BASE_ID, timeout=TIMEOUT)
    assert view.for_base.isChecked() and view.kind_adapters.isChecked()
    qtbot.mouseClick(view.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.status.text().endswith("result(s)"), timeout=TIMEOUT)
    found = [view.results.result(r)["repo_id"] for r in range(view.results.rowCount())]
    assert found == ["deck/tiny-style", "deck/big-lora", "deck/wide-lora"]     # not other/unrelated-lora

    # Details before download: a verdict against the loaded model; an adapter that does not fit
    # cannot be downloaded from here.
    select_repo(qtbot, view, "deck/wide-lora")
    assert view.d_verdict.text().startswith("✘") and "hidden" in view.d_verdict.text()
    assert not view.download_button.isEnabled()
    select_repo(qtbot, view, "deck/big-lora")
    assert view.d_verdict.text().startswith("✔"), view.d_verdict.text()
    assert view.download_button.isEnabled()
    assert any(view.d_files.item(i).data(Qt.ItemDataRole.UserRole) == WEIGHTS for i in range(view.d_files.count()))

    # Download (slowed down), watch the progress in the downloads panel, cancel it.
    hub.throttle = 0.02
    qtbot.mouseClick(view.download_button, Qt.MouseButton.LeftButton)
    panel = w.downloads
    assert w.downloads_dock.isVisible()
    act = w.activities.activities()[0]
    assert act.kind == "download" and act.state == "running"
    # (past the small config files, well into the weights)
    qtbot.waitUntil(lambda: act.fraction is not None and 0.1 < act.fraction < 1, timeout=TIMEOUT)
    assert " MB" in act.status_text()
    assert panel.cancel_button.isEnabled() and not panel.resume_button.isEnabled()
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: act.state != "running", timeout=TIMEOUT)
    assert act.state == "cancelled", (act.state, act.error)
    assert {e.id for e in state.library_model.entries()} == library_before
    assert panel.resume_button.isEnabled()

    # Resume: the file continues where it stopped (a Range request), and the adapter is in the
    # library the moment the download is done.
    hub.throttle = 0.0
    hub.requests.clear()
    qtbot.mouseClick(panel.resume_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: act.state != "running", timeout=TIMEOUT)
    assert act.state == "done", act.error
    gets = weight_gets(hub, "deck/big-lora")
    assert gets and gets[0] is not None and int(gets[0][6:-1]) > 0           # resumed, not restarted
    big = next(e for e in state.library_model.entries() if e.id not in library_before)
    assert big.source.startswith("hub:deck/big-lora@") and big.format == "peft"

    # A connection reset in the middle of the weights: the download carries on with a Range request.
    select_repo(qtbot, view, "deck/tiny-style")
    assert view.d_verdict.text().startswith("✔"), view.d_verdict.text()
    hub.requests.clear()
    # Cut after one whole 64 KB download chunk (fake_hub's DOWNLOAD_CHUNK_SIZE) has reached the file.
    hub.reset_after[WEIGHTS] = 66_000
    qtbot.mouseClick(view.download_button, Qt.MouseButton.LeftButton)
    act2 = w.activities.activities()[0]
    assert act2 is not act
    qtbot.waitUntil(lambda: act2.state != "running", timeout=TIMEOUT)
    assert act2.state == "done", act2.error
    gets = weight_gets(hub, "deck/tiny-style")
    assert len(gets) == 2 and gets[0] is None and gets[1] == "bytes=65536-"          # resumed after the reset
    style = next(e for e in state.library_model.entries() if e.source.startswith("hub:deck/tiny-style@"))

    # Both fit the loaded model: the mixer offers them, and they join the mix.
    qtbot.waitUntil(lambda: all(e.id in state.compat and state.compat[e.id].usable for e in (big, style)),
                    timeout=TIMEOUT)
    assert state.add_to_mix(style.id) and state.add_to_mix(big.id)
    assert [e.adapter_id for e in state.mix_model.entries()][-2:] == [style.id, big.id]


def test_offline_hub_tab_says_so_in_seconds_and_search_retries(make_app, demo_engine, fake_hub, full_backlog,  # noqa: F811
                                                               tmp_path, monkeypatch, qtbot):
    """Where the network black-holes, the tab says the Hub cannot be reached within ~3 s (not 30) and
    in words for users; pressing Search again tries afresh and finds the Hub once it is back."""
    import time

    from adapters_backend.hub.client import OFFLINE_HINT
    fake_hub.add("deck/tiny-style", files_of(write_peft(tmp_path / "style", seed=3)), tags=["peft", "lora"],
                 library_name="peft", downloads=3)
    monkeypatch.setenv("HF_ENDPOINT", full_backlog)
    app = make_app().start()
    w = app.window
    w.tabs.setCurrentIndex(4)
    view = w.hub
    qtbot.waitUntil(view.isVisible, timeout=TIMEOUT)
    view.query.setText("tiny")
    t0 = time.monotonic()
    qtbot.mouseClick(view.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: OFFLINE_HINT in view.status.text(), timeout=15000)
    assert time.monotonic() - t0 < 4.0
    assert view.status.text() == f"{OFFLINE_HINT} Press Search to try again."
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)                 # back online
    qtbot.mouseClick(view.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.status.text().endswith("result(s)"), timeout=TIMEOUT)
    assert [view.results.result(r)["repo_id"] for r in range(view.results.rowCount())] == ["deck/tiny-style"]


def test_a_gguf_model_repository_offers_its_models_and_downloads_a_split_one_whole(make_app, demo_engine, gui_hub,
                                                                                   qtbot):
    hub = gui_hub
    hub.add("gina/big-llama-GGUF", {"big-llama-Q4_K_M.gguf": b"GGUF" + b"\0" * 300,
                                   "big-llama-Q8_0-00001-of-00002.gguf": b"GGUF" + b"\1" * 400,
                                   "big-llama-Q8_0-00002-of-00002.gguf": b"GGUF" + b"\2" * 200,
                                   "mmproj-big-llama-f16.gguf": b"GGUF" + b"\0" * 90, "README.md": b"# big"},
            tags=["gguf"], downloads=2)
    app = make_app().start()
    w = app.window
    view = w.show_view("hub")
    view.show_models()
    view.for_base.setChecked(False)
    view.query.setText("big-llama")
    qtbot.mouseClick(view.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.status.text().endswith("result(s)"), timeout=TIMEOUT)
    select_repo(qtbot, view, "gina/big-llama-GGUF")
    labels = [view.d_files.item(i).text() for i in range(view.d_files.count())]
    assert labels == ["big-llama-Q4_K_M.gguf  (304 B)", "big-llama-Q8_0-00001-of-00002.gguf  (2 parts, 608 B)"]
    assert view.d_files.currentRow() == 0 and view.download_button.isEnabled()     # Q4_K_M, which fits
    from desktop_app.widgets.hub_browser import file_label  # one too large for this computer
    too_big = {"name": "huge-F16.gguf", "parts": ["huge-F16.gguf"], "size": 40 * 10**9, "fits": False}
    assert file_label(too_big, 16 * 10**9) == "huge-F16.gguf  (40.0 GB) — too large for this computer's 16.0 GB of memory"
    view.d_files.setCurrentRow(1)
    qtbot.mouseClick(view.download_button, Qt.MouseButton.LeftButton)
    act = w.activities.activities()[0]
    assert act.title == "Download big-llama-Q8_0-00001-of-00002.gguf (2 parts)"
    qtbot.waitUntil(lambda: act.state != "running", timeout=TIMEOUT)
    from huggingface_hub import constants
    snapshots = list(Path(constants.HF_HUB_CACHE).glob("models--gina--big-llama-GGUF/snapshots/*"))
    assert len(snapshots) == 1
    assert {p.name for p in snapshots[0].iterdir()} == {"big-llama-Q8_0-00001-of-00002.gguf",
                                                         "big-llama-Q8_0-00002-of-00002.gguf"}
    # The app then loads it (these parts are no real model: that fails) and checks the Hub selection
    # again: let both end while the window and the fake Hub are still there.
    qtbot.waitUntil(lambda: not app.state.loading, timeout=TIMEOUT)
    qtbot.waitUntil(lambda: app.state.jobs.wait(0), timeout=TIMEOUT)
    qtbot.wait(50)                                      # their results, queued to this thread
