"""What formatting an answer's Markdown costs the window while it is written:
`python bench/bench_answer_format.py [--kb 32] [--runs 3]`.

In the chat's real transcript (ten earlier messages above), an answer grows by 120 characters at a
time (about what a model writes between two of the chat's paints) up to --kb kB, each step set on the
message and painted before the next. The figure is the time of one step (set the text, lay out, paint)
around 2, 8, 16 and 32 kB, formatted ÷ plain text, both run here side by side; and the longest step of
answers that loop on a shape Qt lays out slowly (a table that never ends, one paragraph of emphasis),
which the view must stop formatting before they stall the window.

Under a real X server for realistic painting: `xvfb-run -a .venv/bin/python bench/bench_answer_format.py`
(with QT_QPA_PLATFORM=xcb); without one it uses the offscreen platform.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEP = 120
MARKS = (2, 8, 16, 32)

ANSWER_PART = """## Step {i}: set up the harbour

The harbour keeper writes down **every ship** that comes in, with the *wind* and the `tide`, see
[the log](https://example.com/log/{i}).

1. Open the ledger and find today's page.
2. Write the ship's name, its flag and its cargo:
   - grain, timber or coal
   - anything else goes under *other*

```python
def record(ship, cargo):
    ledger.append({{"ship": ship, "cargo": cargo, "step": {i}}})
    return len(ledger)
```

| Ship | Cargo | Tide |
|------|-------|------|
| Mary | grain | high |
| Ann  | coal  | low  |

"""


def realistic(chars: int) -> str:
    text, i = "", 0
    while len(text) < chars:
        text += ANSWER_PART.format(i=i)
        i += 1
    return text[:chars]


def looping_table(chars: int) -> str:
    return ("| step | value |\n|---|---|\n" + "| 1 | 2 |\n" * (chars // 8))[:chars]


def looping_emphasis(chars: int) -> str:
    return ("*a" * (chars // 2))[:chars]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kb", type=int, default=32)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    from PySide6.QtWidgets import QApplication

    from desktop_app import qt_fixes
    from desktop_app.conversation_store import Message
    from desktop_app.widgets.message_widget import MessageWidget
    from desktop_app.widgets.transcript import Transcript

    app = QApplication.instance() or QApplication(sys.argv[:1])
    qt_fixes.apply()                          # as the app does (PySide6 6.12's reference leaks)

    def grow(make_text, formatted: bool) -> dict[int, float]:
        """Seconds of each step, by the length the answer had reached."""
        scroll = Transcript(lambda m: MessageWidget(m.role, m.content, formatted=formatted))
        scroll.resize(900, 700)
        scroll.load([Message("user" if i % 2 == 0 else "assistant", realistic(600)) for i in range(10)])
        scroll.show()
        reply = MessageWidget("assistant", formatted=formatted)
        scroll.append(reply)
        app.processEvents()
        full = make_text(args.kb * 1024)
        steps = {}
        for end in range(STEP, len(full) + 1, STEP):
            t0 = time.perf_counter()
            reply.set_text(full[:end])
            scroll.repaint()
            app.processEvents()
            steps[end] = time.perf_counter() - t0
        scroll.close()
        scroll.deleteLater()
        app.processEvents()
        return steps

    def around(steps: dict[int, float], kb: int) -> float:
        near = [s for end, s in steps.items() if abs(end - kb * 1024) <= 10 * STEP]
        return statistics.median(near)

    marks = [kb for kb in MARKS if kb <= args.kb]
    by_kind: dict[bool, dict[int, list[float]]] = {True: {kb: [] for kb in marks}, False: {kb: [] for kb in marks}}
    for _run in range(args.runs):
        for formatted in (False, True):
            steps = grow(realistic, formatted)
            for kb in marks:
                by_kind[formatted][kb].append(around(steps, kb))
    print(f"one step of a growing answer (median of {args.runs} runs; platform {app.platformName()}):")
    for kb in marks:
        plain = statistics.median(by_kind[False][kb])
        fmt = statistics.median(by_kind[True][kb])
        print(f"  at {kb:>2} kB: formatted {fmt * 1000:6.1f} ms, plain {plain * 1000:6.1f} ms, "
              f"ratio {fmt / plain:.2f}×")
    for name, make in (("a table that never ends", looping_table), ("one paragraph of emphasis", looping_emphasis)):
        fmt_steps = grow(make, True)
        plain_steps = grow(make, False)
        print(f"  {name}: longest step formatted {max(fmt_steps.values()) * 1000:.1f} ms, "
              f"plain {max(plain_steps.values()) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
