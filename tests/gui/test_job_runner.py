"""A job's signals object is torn down on its own, on the GUI thread, after its handle.

Destroyed by its last Python reference going away, it went down inside its handle's teardown (the
handle's attributes cleared in the handle's own `finished` slot), and that nested teardown read a
freed wrapper now and then: a job ending within microseconds of the app's start crashed the first
GUI tests in 5 of 16 runs (core dump: ~QObject → Sbk_GetPyOverride on garbage)."""
from __future__ import annotations

import threading

from PySide6.QtCore import Qt

from desktop_app.workers.job_runner import JobRunner


def _instant(ctx=None):
    return 1


def test_a_jobs_signals_go_after_its_handle_on_the_gui_thread(qtbot):
    runner = JobRunner()
    events, results = [], []
    for i in range(50):
        job = runner.start(_instant)
        job.signals.result.connect(results.append)
        for what, obj in (("signals", job.signals), ("handle", job)):
            obj.destroyed.connect(lambda *_, what=what, i=i: events.append(
                (i, what, threading.current_thread() is threading.main_thread())), Qt.ConnectionType.DirectConnection)
    del job, obj                                           # only the runner holds them now
    qtbot.waitUntil(lambda: len(events) == 100, timeout=10000)
    assert results == [1] * 50
    assert all(on_gui for _i, _what, on_gui in events)
    for i in range(50):
        assert [what for j, what, _ in events if j == i] == ["handle", "signals"]
