"""What saving a chat costs the GUI thread: `python bench/bench_chat_save.py [--rounds 7]`.

The chat saves its conversation when a question is sent, every SAVE_EVERY_S while the answer is
written (so a crash loses neither), and when the answer ends, each time on the GUI thread. For chats
of 10, 1,000 and 10,000 messages (~40-word questions, ~60-word answers) and an answer of 2,000
characters being written, this times `ConversationStore.save` (atomic: temp file, fsync, rename)
against the way conversations were written before (dataclasses.asdict, json indented), side by side
in the same run, in a temporary folder on the same disk as the repository. Medians of --rounds. The
figure: milliseconds per save, the ratio, and the share of the GUI's time the saves take while an
answer is written (the longer of SAVE_EVERY_S and save time ÷ SAVE_SHARE between two saves).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from adapters_backend.atomic import write_json_atomic  # noqa: E402
from desktop_app.conversation_store import Conversation, ConversationStore, Message  # noqa: E402
from desktop_app.widgets.answer_saver import SAVE_EVERY_S, SAVE_SHARE  # noqa: E402


def chat(n: int) -> Conversation:
    conv = Conversation.new()
    for i in range(n // 2):
        conv.messages += [Message("user", f"Question {i}: " + "tell me about the harbour and its ships " * 5),
                          Message("assistant", "The harbour has many ships and a lighthouse. " * 8,
                                  {"model": "Demo model", "mix": "pirate +1.00", "tokens": 60, "seed": i})]
    return conv


def median_ms(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=REPO) as folder:
        store = ConversationStore(folder)
        for n in (10, 1000, 10000):
            conv = chat(n)
            answer = Message("assistant", "Ahoy! " * 333, {"model": "Demo model", "mix": "pirate +1.00"})
            before_path = Path(folder) / "before.json"

            def before(conv=conv, answer=answer, before_path=before_path):
                d = asdict(conv)
                d["messages"].append(asdict(answer))
                write_json_atomic(before_path, d)

            old = median_ms(before, args.rounds)
            new = median_ms(lambda conv=conv, answer=answer: store.save(conv, answering=answer), args.rounds)
            every = max(SAVE_EVERY_S, new / 1000 / SAVE_SHARE)
            print(f"{n:>6} messages: save {new:6.1f} ms, as before {old:6.1f} ms ({new / old:.2f}×); while an "
                  f"answer is written, a save every {every:.1f} s, {100 * new / 1000 / every:.2f} % of the GUI's time",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
