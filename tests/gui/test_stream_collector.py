"""StreamCollector, the one piece that batches streamed text for the chat, compare and sweep views:
however fast pieces arrive, a pane is painted at most every FLUSH_MS; nothing is lost or reordered;
a finished (or failed) request is painted completely before it is reported."""
from __future__ import annotations

import time

import pytest
from PySide6.QtCore import QObject, QTimer, Signal

from desktop_app.stream_collector import FLUSH_MS, StreamCollector
from desktop_app.workers.engine_host import GenerationStats

TIMEOUT = 60000


class Source(QObject):
    """The three EngineHost signals a collector listens to, emitted on the GUI thread."""
    token_streamed = Signal(int, str, int)
    generation_finished = Signal(object)
    generation_failed = Signal(int, object)


class Pane:
    def __init__(self):
        self.appends: list[tuple[float, str]] = []
        self.info = ""

    def append(self, text: str) -> None:
        self.appends.append((time.perf_counter(), text))

    def set_info(self, text: str) -> None:
        self.info = text

    def text(self) -> str:
        return "".join(t for _, t in self.appends)


def _gaps(times: list[float]) -> list[float]:
    return [(b - a) * 1000 for a, b in zip(times, times[1:])]


def test_pieces_are_painted_in_batches_and_finished_in_order(qtbot):
    source = Source()
    collector = StreamCollector(source)
    panes = {1: Pane(), 2: Pane(), 3: Pane()}
    arrivals = {rid: collector.track(rid, pane) for rid, pane in panes.items()}
    finished, all_done = [], []
    collector.one_finished.connect(lambda pane, stats, error: finished.append((pane, stats, error, pane.text())))
    collector.all_finished.connect(lambda: all_done.append(True))
    sent = {1: [], 2: [], 3: []}
    n = [0]

    def tick():                      # a piece for each request every millisecond for about 0.4 s
        for rid in (1, 2):
            text = f"{rid}:{n[0]} "
            sent[rid].append(text)
            source.token_streamed.emit(rid, text, 2)
        source.token_streamed.emit(99, "not tracked", 1)
        n[0] += 1

    timer = QTimer(interval=1)
    timer.timeout.connect(tick)
    timer.start()
    qtbot.wait(400)
    timer.stop()
    source.token_streamed.emit(3, "only piece", 1)
    source.generation_finished.emit(GenerationStats(1, 2 * n[0], 0.4, 5, False, "stop"))
    assert panes[1].text() == "".join(sent[1])           # everything painted before "finished" is said
    assert finished[0][0] is panes[1] and finished[0][3] == "".join(sent[1]) and finished[0][2] is None
    assert panes[1].info.startswith(f"{2 * n[0]} tokens")
    source.generation_failed.emit(3, RuntimeError("engine gone"))
    assert finished[1][0] is panes[3] and panes[3].text() == "only piece" and str(finished[1][2]) == "engine gone"
    assert panes[3].info == "failed: engine gone" and collector.running and not all_done
    source.generation_finished.emit(GenerationStats(2, 0, 0.0, None, True, "cancelled"))
    assert panes[2].text() == "".join(sent[2]) and panes[2].info == "stopped"
    assert all_done == [True] and not collector.running

    assert n[0] > 100
    for rid in (1, 2):
        times = [t for t, _ in panes[rid].appends[:-1]]           # the last one is the flush at "finished"
        assert len(times) < n[0] / 5                              # batched, not one paint per piece
        assert min(_gaps(times)) >= FLUSH_MS * 0.8, _gaps(times)  # (timer granularity: a few ms)
        a = arrivals[rid]
        assert (a.tokens, a.first_batch, a.pending) == (2 * n[0], 2, [])
        assert a.tokens_per_second == pytest.approx((a.tokens - 2) / (a.t_last - a.t_first))
    source.token_streamed.emit(1, "late", 1)                       # after the end: ignored
    assert panes[1].text() == "".join(sent[1])


def test_chat_paints_the_reply_in_batches(make_app, demo_engine, qtbot, monkeypatch):
    from desktop_app.widgets import chat_reply
    painted = []
    append = chat_reply.StreamedReply.append

    def recording_append(self, text):
        painted.append(time.perf_counter())
        append(self, text)

    monkeypatch.setattr(chat_reply.StreamedReply, "append", recording_append)
    # Every token its own signal: the demo model writes a joke faster than the host's own batching
    # interval, and it is the chat view's painting in batches that is measured here.
    from desktop_app.workers import engine_host
    monkeypatch.setattr(engine_host, "BATCH_S", 0.0)
    app = make_app().start()
    chat = app.window.chat
    chat.sampling.temperature.setValue(0.0)
    chat.sampling.max_tokens.setValue(400)
    pieces = []
    app.state.host.token_streamed.connect(lambda _rid, t, _n: pieces.append(t))
    chat.prompt.setPlainText("Tell me a joke.")
    chat.send()
    qtbot.waitUntil(lambda: not chat.generating, timeout=TIMEOUT)
    assert chat.last_reply_text() == "".join(pieces) and len(pieces) > 2
    assert chat._arrival.tokens == chat.conversation.messages[-1].info["gui_tokens"] > 0
    assert min(_gaps(painted[:-1]), default=FLUSH_MS) >= FLUSH_MS * 0.8, _gaps(painted)
