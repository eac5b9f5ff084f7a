"""While a main window lives, cyclic garbage is collected on the GUI thread only (qt_fixes, item 2)."""
from __future__ import annotations

import gc
import threading

from PySide6.QtWidgets import QWidget

from desktop_app import qt_fixes


class _Cycle:
    finalized_on: list[str] = []

    def __init__(self):
        self.me = self                       # only the cyclic collector can free this

    def __del__(self):
        _Cycle.finalized_on.append(threading.current_thread().name)


def _release(qtbot, owner) -> None:
    key = id(owner)
    owner.deleteLater()
    qtbot.waitUntil(lambda: key not in qt_fixes._gc_owners, timeout=5000)
    # Windows of earlier tests may still be alive; with none left, automatic collection is back.
    assert gc.isenabled() == (not qt_fixes._gc_owners)


def test_garbage_made_on_a_worker_thread_is_collected_on_the_gui_thread(qtbot):
    owner = QWidget()
    qt_fixes.collect_garbage_on_gui_thread(owner)
    try:
        assert not gc.isenabled()
        _Cycle.finalized_on.clear()

        kept = []

        def work():                          # a busy worker: cycles plus enough allocations for gen0
            for _ in range(200):
                _Cycle()
            kept.extend([i] for i in range(20000))

        worker = threading.Thread(target=work, name="worker")
        worker.start()
        worker.join()
        assert _Cycle.finalized_on == []     # the worker allocated far past gen0's threshold: no collection
        assert gc.get_count()[0] > gc.get_threshold()[0]
        qtbot.waitUntil(lambda: len(_Cycle.finalized_on) == 200, timeout=5000)
        kept.clear()
        assert set(_Cycle.finalized_on) == {threading.main_thread().name}
    finally:
        _release(qtbot, owner)


def test_overlapping_owners_keep_collection_off_until_the_last_goes(qtbot):
    first, second = QWidget(), QWidget()
    qt_fixes.collect_garbage_on_gui_thread(first)
    qt_fixes.collect_garbage_on_gui_thread(second)
    _release(qtbot, first)
    assert not gc.isenabled()
    _release(qtbot, second)
