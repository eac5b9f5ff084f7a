"""What a library and a chat list grown over months cost the window: `python bench/bench_big_library.py
[--adapters 1000] [--chats 3000] [--runs 3]`.

A data folder with --adapters installed adapters (copies of the demo's PEFT adapter, each its own
files) and --chats saved conversations, made once per size in the temporary folder. Each run starts
the real main window on the demo model in a fresh process and measures the longest gap beyond 5 ms
between ticks of a 5 ms GUI timer (the longest time the window could not react):
- start: from building the window until the model is loaded, every chat is listed and 3 s have passed;
- library tab: opening it the first time (its table sorted by name), once the library has been
  checked against the model.
Side by side in the same run, the same start with the lists laid out row by row (Qt's default: every
row of the adapter list and the chat list measured for its size at each change, in Python callbacks),
as LoRA Deck did before it gave them rows of one height; and the same start on an empty data folder
(the demo's three adapters, no chats), the floor. Medians of --runs; goal for a stall ≤ 50 ms beyond
that floor (bench_gui's goal for the window).

Under a real X server for realistic painting: `xvfb-run -a .venv/bin/python bench/bench_big_library.py`
(with QT_QPA_PLATFORM=xcb); without one it uses the offscreen platform.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PEFT = REPO / "adapters_backend" / "demo" / "assets" / "adapters" / "shout-peft"

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == "row-by-row":
    from PySide6.QtWidgets import QListView
    QListView.setUniformItemSizes = lambda self, on: None          # as before: Qt's default
from PySide6.QtCore import QCoreApplication, QEvent, QTimer
from desktop_app.app import build_main_window, create_app

app = create_app([])
gaps, last = [], [time.perf_counter()]

def tick():
    now = time.perf_counter()
    gaps.append((now - last[0]) * 1000)
    last[0] = now

timer = QTimer()
timer.timeout.connect(tick)
timer.start(5)

def run_for(seconds, until=lambda: True):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        app.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        if until():
            return True
        time.sleep(0.001)
    return False

state, window = build_main_window()
window.resize(1200, 800)
window.show()
window.start()
chats = int(sys.argv[3])
assert run_for(120, lambda: state.model is not None and state.conversations.rowCount() >= chats)
run_for(3)
start = max(gaps)
# The library is checked against the model in a worker after each load (1,000 adapters: a few
# seconds); the tab is opened once that is over (while it runs, every call from Qt into Python
# waits for the worker's turn and opening the tab took 500-700 ms).
assert run_for(120, lambda: state._compat_job is not None and state._compat_job.done)
run_for(1)
gaps.clear()
last[0] = time.perf_counter()
window.show_view("library")
run_for(2)
print(json.dumps({"start": start, "library": max(gaps), "adapters": state.library_model.rowCount()}))
window.close()
"""


def make_data(folder: Path, adapters: int, chats: int) -> None:
    """The data folder (made once: installing 1,000 adapters takes about a minute)."""
    done = folder / "made.json"
    if done.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    os.environ["LORADECK_DATA_DIR"] = str(folder / "data")
    os.environ["LORADECK_CACHE_DIR"] = str(folder / "cache")
    sys.path.insert(0, str(REPO))
    from adapters_backend.library import Library
    from desktop_app.conversation_store import Conversation, ConversationStore, Message

    library = Library()
    t0 = time.perf_counter()
    for i in range(adapters):
        src = folder / "sources" / f"a{i}"
        shutil.copytree(PEFT, src)
        (src / "README.md").write_text(f"adapter {i}\n")            # its own files, its own id
        library.install(str(src), name=f"adapter-{i:04d}")
    shutil.rmtree(folder / "sources")
    store = ConversationStore(folder / "data" / "conversations")
    for i in range(chats):
        conv = Conversation.new()
        conv.title = f"chat {i} " * (1 + i % 5)
        conv.messages = [Message("user", f"question {i} " * 20), Message("assistant", f"answer {i} " * 60)]
        store.save(conv)
    done.write_text(json.dumps({"adapters": adapters, "chats": chats, "seconds": time.perf_counter() - t0}))
    print(f"made {adapters} adapters and {chats} chats in {time.perf_counter() - t0:.0f} s")


def run(data: Path, how: str, chats: int) -> dict:
    env = dict(os.environ, LORADECK_DATA_DIR=str(data / "data"), LORADECK_CACHE_DIR=str(data / "cache"),
               LORADECK_SETTINGS_DIR=tempfile.mkdtemp(prefix="loradeck-bench-settings-"))
    env.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    out = subprocess.run([sys.executable, "-c", CHILD, str(REPO), how, str(chats)], env=env, capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0:
        raise SystemExit(f"the run ({how}) failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--adapters", type=int, default=1000)
    ap.add_argument("--chats", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.gettempdir()) / "loradeck-bench-big-library"
    big = root / f"{args.adapters}-{args.chats}"
    empty = root / "empty"
    make_data(big, args.adapters, args.chats)
    empty.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict]] = {"now": [], "row-by-row": [], "empty": []}
    for r in range(args.runs):
        for name, folder, how, chats in (("now", big, "now", args.chats), ("row-by-row", big, "row-by-row", args.chats),
                                         ("empty", empty, "now", 0)):
            got = run(folder, how, chats)
            results[name].append(got)
            print(f"run {r + 1}/{args.runs} {name:10s}: start {got['start']:6.0f} ms, library tab "
                  f"{got['library']:6.0f} ms ({got['adapters']} adapters)", flush=True)

    def med(name: str, key: str) -> float:
        return statistics.median(x[key] for x in results[name])

    floor = med("empty", "start")
    print(f"\nlongest stall, medians of {args.runs} ({args.adapters} adapters, {args.chats} chats):")
    now, before = med("now", "start"), med("row-by-row", "start")
    print(f"  start                    {now:6.0f} ms; rows one by one {before:6.0f} ms ({now / before:.2f}×); "
          f"empty data folder {floor:6.0f} ms")
    print(f"  opening the library tab  {med('now', 'library'):6.0f} ms; empty data folder "
          f"{med('empty', 'library'):6.0f} ms (the rows' layout does not matter there: a table)")
    beyond = med("now", "start") - floor
    print(f"  start beyond the empty folder's: {beyond:.0f} ms — goal ≤ 50 ms: {'met' if beyond <= 50 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
