"""What a long chat costs the window: `python bench/bench_long_transcript.py [--messages 1000] [--paste 100000] [--runs 3]`.

In the real main window on the demo model (temporary data folders), a chat of --messages messages
(~40-word questions and ~60-word answers), and one of 10 whose first question is a pasted document
of --paste characters (in paragraphs; in one line, as a log or JSON), against one of 10:
- open: from opening the chat to its first paint;
- stall: the longest gap beyond 5 ms between ticks of a 5 ms GUI timer while the demo model answers
  (200 tokens; it writes faster than the chat paints, so every paint of the growing answer lays out the
  column again) — the longest time the window could not react.
Medians of --runs; the ratio long ÷ short is the figure (goal for a stall: ≤ 50 ms, as bench_gui).

Under a real X server for realistic painting: `xvfb-run -a .venv/bin/python bench/bench_long_transcript.py`
(with QT_QPA_PLATFORM=xcb); without one it uses the offscreen platform.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--paste", type=int, default=100_000, help="characters of the pasted document")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--plain", action="store_true", help="answers as plain text (View → Format answers off)")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    tmp = tempfile.mkdtemp(prefix="loradeck-bench-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    for name in ("LORADECK_DATA_DIR", "LORADECK_CACHE_DIR", "LORADECK_SETTINGS_DIR"):
        os.environ[name] = str(Path(tmp) / name.lower())
    from bench_gui_live import StallMeter, wait_until
    from PySide6.QtCore import QEvent, QObject

    from desktop_app.app import build_main_window, create_app
    from desktop_app.conversation_store import Conversation, Message
    from desktop_app.widgets.message_widget import MessageWidget

    app = create_app(sys.argv[:1])
    state, window = build_main_window()
    state.settings.set("appearance/format_answers", not args.plain)
    state.errors.show_dialogs = False
    window.resize(1200, 800)
    window.show()
    window.start()
    wait_until(app, lambda: state.model is not None or state.errors.history, 120)
    if state.model is None:
        print(f"the demo model did not load: {state.errors.history}", file=sys.stderr)
        return 2
    chat = window.chat
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(200)
    chat.sampling.seed.setValue(1)
    painted = []

    class Painted(QObject):                    # a message of the opened chat painted
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint and isinstance(obj, MessageWidget):
                painted.append(time.perf_counter())
            return False

    spy = Painted()
    app.installEventFilter(spy)

    def document(chars: int, lines: bool) -> str:
        """An article in paragraphs, or a log or JSON without line breaks."""
        para = "The harbour keeper wrote down every ship that came in, the wind, the tide and the cargo. " * 6
        text = "Summarize this:\n\n" + ("\n\n" if lines else " ").join([para.strip()] * (chars // len(para) + 1))
        return text[:chars]

    def conversation(n: int, paste: int = 0, lines: bool = True) -> Conversation:
        conv = Conversation.new()
        for i in range(n // 2):
            question = (document(paste, lines) if paste and i == 0 else
                        f"Question {i}: " + "tell me about the harbour and its ships " * 5)
            conv.messages += [Message("user", question),
                              Message("assistant", "The harbour has many ships and a lighthouse. " * 8,
                                      {"model": "Demo model", "tokens": 60})]
        state.conversations.add(conv)
        return conv

    meter = StallMeter()
    results = {}
    cases = {"10 messages": (10, 0, True), f"{args.messages} messages": (args.messages, 0, True),
             f"10, one pasted ({args.paste:,} chars)": (10, args.paste, True),
             "10, one pasted in a single line": (10, args.paste, False)}
    for name, (n, paste, lines) in cases.items():
        opens, stalls = [], []
        for _run in range(args.runs):
            conv = conversation(n, paste, lines)
            painted.clear()
            t0 = time.perf_counter()
            chat.open_conversation(conv)
            wait_until(app, lambda: bool(painted), 60)
            opens.append(painted[0] - t0)
            chat.prompt.setPlainText("Tell me a long story about the sea.")
            meter.begin()
            chat.send()
            wait_until(app, lambda: not chat.generating, 120)
            stalls.append(meter.end())
        results[name] = (statistics.median(opens), statistics.median(stalls))
        print(f"{name:>32}: open to first paint {results[name][0] * 1000:7.1f} ms, longest stall while an "
              f"answer streams {results[name][1]:6.1f} ms (medians of {args.runs})", flush=True)
    o_short, s_short = results["10 messages"]
    print()
    for name in list(cases)[1:]:
        o_long, s_long = results[name]
        print(f"{name} ÷ 10 messages: open {o_long / o_short:.2f}×, stall {s_long / max(s_short, 0.1):.2f}×; "
              f"longest stall {s_long:.1f} ms (goal ≤ 50 ms: {'met' if s_long <= 50 else 'NOT met'})")
    print(f"platform {app.platformName()}")
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
