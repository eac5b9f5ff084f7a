"""Regenerate the screenshots in this folder: the main states of the desktop app on the demo model.

    xvfb-run -a -s "-screen 0 1440x900x24" env QT_QPA_PLATFORM=xcb .venv/bin/python docs/screenshots/make_screenshots.py

Runs in a neutral, temporary home folder (HOME is set to it, so the data, cache and settings folders
are the default ones under it and the app shows them as ~/…): no path of the machine that made the
screenshots shows, and your library and conversations are not touched. States whose backend is not
installed are skipped with a note. `--dark` makes chat-dark.png with the app's own dark theme.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent
REPO = OUT.parents[1]
SIZE = (1360, 860)


def wait_until(cond, timeout=120.0):
    from PySide6.QtCore import QEventLoop, QTimer
    loop, end = QEventLoop(), time.monotonic() + timeout
    poll = QTimer()
    poll.setInterval(20)
    poll.timeout.connect(lambda: loop.quit() if cond() or time.monotonic() > end else None)
    poll.start()
    if not cond():
        loop.exec()
    poll.stop()
    if not cond():
        raise TimeoutError("state not reached")


def settle(ms: int = 300):
    from PySide6.QtCore import QEventLoop, QTimer
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def save(widget, name: str):
    settle()
    widget.grab().save(str(OUT / f"{name}.png"))
    print("saved", name)


def ask(window, text: str):
    chat = window.chat
    chat.prompt.setPlainText(text)
    chat.send()
    wait_until(lambda: not chat.generating)


def neutral_home() -> Path:
    """A fresh home folder for the app: every LoRA Deck, XDG and Hugging Face folder at its default
    place under it."""
    home = Path(tempfile.mkdtemp(prefix="loradeck-shots-")) / "home"
    home.mkdir()
    os.environ["HOME"] = str(home)
    for name in ("LORADECK_DATA_DIR", "LORADECK_CACHE_DIR", "LORADECK_SETTINGS_DIR", "XDG_DATA_HOME",
                 "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        os.environ.pop(name, None)
    return home


def start_loopback_hub():
    """The tests' loopback Hub (tests/fixtures/fake_hub.py) holding the demo adapters as Hub repos made
    for the demo model, and one that does not fit it: the Hub tab is shown with real results and
    verdicts without reaching huggingface.co. Returns (hub, demo model id) or None."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from fixtures.fake_hub import FakeHub
        from fixtures.small_adapters import write_peft

        from adapters_backend import demo
    except ImportError as exc:
        print("no loopback hub for the Hub screenshot:", exc)
        return None
    base = demo.demo_model_id()
    hub = FakeHub().start()
    tags = ["peft", "lora", "safetensors", f"base_model:adapter:{base}", "license:apache-2.0"]

    def files(folder):
        return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}

    for i, a in enumerate(demo.demo_adapters()):
        if Path(a.path).is_dir():
            hub.add(f"deck-demo/{a.name}-lora", files(a.path), tags=tags, card={"base_model": base},
                    library_name="peft", downloads=1200 - 300 * i, likes=40 - 9 * i,
                    modified=f"2025-0{3 + i}-01T00:00:00.000Z")
    other = write_peft(Path(tempfile.mkdtemp()) / "wide", hidden=96, seed=3)
    hub.add("someone/wide-style-lora", files(other), tags=tags, card={"base_model": base}, library_name="peft",
            downloads=75, likes=2, modified="2024-11-20T00:00:00.000Z")
    big = write_peft(Path(tempfile.mkdtemp()) / "big", hidden=128, layers=4, r=128,
                     targets=("q_proj", "o_proj"), seed=4)
    hub.add("deck-demo/storyteller-lora", files(big), tags=tags, card={"base_model": base}, library_name="peft",
            downloads=310, likes=12, modified="2025-05-12T00:00:00.000Z")
    from huggingface_hub import constants
    os.environ["HF_ENDPOINT"] = hub.url
    os.environ.pop("HF_HUB_OFFLINE", None)
    constants.ENDPOINT = hub.url
    constants.HUGGINGFACE_CO_URL_TEMPLATE = hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    constants.HF_HUB_OFFLINE = False
    constants.DOWNLOAD_CHUNK_SIZE = 64 * 1024
    return hub, base


def hub_shot(w, state):
    started = start_loopback_hub()
    view = w.show_view("hub")
    if started is None:
        save(w, "hub")
        return
    hub, base = started
    view.base_id.setText(base)          # the demo GGUF names no upstream repo; a real model usually does
    view.for_base.setChecked(True)
    view.search()
    wait_until(lambda: view.results.rowCount() > 0, 60)
    rows = [view.results.result(r)["repo_id"] for r in range(view.results.rowCount())]
    # A download in progress in the downloads panel (slowed down so it is caught mid-way).
    hub.throttle = 0.05
    view.start_adapter_download("deck-demo/storyteller-lora")
    act = w.activities.activities()[0]
    wait_until(lambda: act.fraction is not None and act.fraction > 0.3, 60)
    view.table.selectRow(rows.index("deck-demo/shout-lora"))
    wait_until(lambda: view._details is not None, 60)
    save(w, "hub")
    act.handle.cancel()
    wait_until(lambda: act.state != "running", 60)
    hub.stop()


def main() -> int:
    neutral_home()
    dark = "--dark" in sys.argv
    from desktop_app.app import build_main_window, create_app
    from desktop_app.settings import AppSettings
    _app = create_app(sys.argv[:1])        # held: the QApplication must outlive this function's windows
    AppSettings().set("appearance/theme", "dark" if dark else "light")    # not this machine's desktop theme
    state, w = build_main_window()
    state.errors.show_dialogs = False
    w.resize(*SIZE)
    w.show()
    w.start()
    wait_until(lambda: state.model is not None or bool(state.errors.history))
    if state.model is None:
        print("the demo model did not load:", state.errors.history)
        return 1
    wait_until(lambda: len(w.mixer.rows) > 0, 60)
    w.chat.sampling.temperature.setValue(0.0)
    if dark:
        ask(w, "What is the capital of France?")
        w.mixer.rows[0].switch.setChecked(True)
        w.mixer.rows[0].spin.setValue(0.8)
        ask(w, "What is the capital of France?")
        save(w, "chat-dark")
        w.close()
        return 0

    save(w, "first-run")
    ask(w, "What is the capital of France?")
    w.mixer.rows[1].switch.setChecked(True)                 # pirate
    w.mixer.rows[1].spin.setValue(0.8)
    ask(w, "What is the capital of France?")
    w.mixer.rows[0].switch.setChecked(True)                 # + shout
    w.mixer.rows[0].spin.setValue(0.6)
    ask(w, "Tell me a joke.")
    save(w, "chat-mix")

    compare = w.show_view("compare")
    compare.prompt.setPlainText("What does a cow say?")
    compare.sampling.temperature.setValue(0.0)
    compare.run()
    wait_until(lambda: not compare.collector.running)
    save(w, "compare")

    sweep = w.show_view("sweep")
    wait_until(lambda: sweep.run_button.isEnabled(), 30)
    sweep.prompt.setPlainText("What is the capital of France?")
    sweep.adapter_x.setCurrentIndex(max(0, sweep.adapter_x.findText("reverse")))
    sweep.strengths_x.setText("0, 0.25, 0.5, 0.75, 1, 1.25")
    sweep.sampling.temperature.setValue(0.0)
    sweep.run()
    wait_until(lambda: not sweep.collector.running)
    save(w, "sweep")

    library = w.show_view("library")
    library.table.selectRow(0)
    library.detail_tabs.setCurrentIndex(0)
    wait_until(lambda: library.anatomy.anatomy is not None or "Cannot" in library.anatomy.message, 60)
    save(w, "library-anatomy")

    hub_shot(w, state)

    w.show_plugins()
    wait_until(lambda: bool(w.plugins_dialog.rows), 30)
    save(w.plugins_dialog, "plugins")
    w.plugins_dialog.close()
    w.show_settings()
    save(w.settings_dialog, "settings")
    w.settings_dialog.close()
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
