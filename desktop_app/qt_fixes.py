"""Work-arounds for bugs in the Qt binding that would otherwise crash the app.

1. PySide6 6.12.0 on Python 3.11 drops one reference to `True` every time a signal calls a Python
   slot (6.11.3 does not; Python ≥ 3.12 is safe because True/False are immortal there). After enough
   signals — a few thousand streamed tokens — True's count reaches zero and the interpreter aborts
   ("bool_dealloc: deallocating True or False"). We detect the leak with a probe and, only then, give
   True and False a huge reference count, which makes them as immortal as Python 3.12 does.
   The same version drops a reference to None on every call of a method that returns nothing
   (label.setText(…)): with ~7,000 references at start, a few thousand label updates while answers
   stream abort it too ("none_dealloc"). None gets the same treatment, after its own probe.
2. Shiboken releases the GIL in the middle of destroying a wrapper (a deleteLater'd message widget's
   layout, say). If another thread holding the GIL starts a cyclic garbage collection right then, the
   collector walks the half-destroyed wrapper and the process dies with a segfault (seen in core
   dumps: the engine thread collecting while the GUI thread sat in Shiboken::Object::destroy). So
   while a main window lives, automatic collection is off and the GUI thread collects on a timer,
   by the same rules CPython uses (`collect_garbage_on_gui_thread`).
"""
from __future__ import annotations

import ctypes
import gc
import logging
import sys

log = logging.getLogger(__name__)

_PROBE_EMITS = 32
_HEADROOM = 1 << 40          # ~10^12 signal deliveries before it could matter
_applied = False


def signal_delivery_leaks_bool() -> bool:
    """True if delivering a signal to a Python slot loses a reference to True (the PySide6 bug)."""
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        fired = Signal(int)

    probe = _Probe()
    probe.fired.connect(lambda _v: None)
    before = sys.getrefcount(True)
    for i in range(_PROBE_EMITS):
        probe.fired.emit(i)
    leaked = before - sys.getrefcount(True)
    probe.deleteLater()
    if leaked > 0:
        _add_refs(True, leaked)          # give back what the probe itself took
    return leaked >= _PROBE_EMITS // 2


def void_call_leaks_none() -> bool:
    """True if calling a Qt method that returns nothing loses a reference to None (the PySide6 bug)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(_PROBE_EMITS):
        probe.setObjectName("probe")
    leaked = before - sys.getrefcount(None)
    if leaked > 0:
        _add_refs(None, leaked)          # give back what the probe itself took
    return leaked >= _PROBE_EMITS // 2


def _add_refs(obj: object, n: int) -> None:
    # CPython stores the reference count in the first field of every object (Py_ssize_t ob_refcnt).
    ctypes.c_ssize_t.from_address(id(obj)).value += n


def apply() -> bool:
    """Install the work-arounds this Python/PySide needs; returns whether one was applied."""
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    import PySide6
    if signal_delivery_leaks_bool():
        log.info("PySide6 %s leaks references to True on signal delivery; applying the work-around "
                 "(install PySide6 != 6.12.0 to avoid it)", PySide6.__version__)
        _add_refs(True, _HEADROOM)
        _add_refs(False, _HEADROOM)
        _applied = True
    if void_call_leaks_none():
        log.info("PySide6 %s leaks references to None on calls of void methods; applying the work-around",
                 PySide6.__version__)
        _add_refs(None, _HEADROOM)
        _applied = True
    return _applied


_GC_TICK_MS = 100
_gc_owners: set[int] = set()


class _GuiThreadCollector:
    """Collects as CPython's automatic collector would (gen0 past its threshold, gen1 every 10 gen0
    runs, a full run every 10 gen1 runs but only once the objects added to the oldest generation
    since the last full run exceed a quarter of those it kept), but always from the GUI thread."""

    def __init__(self):
        self.long_lived = 0          # survivors of the last full run (none yet, as in CPython at start)

    def tick(self) -> None:
        counts, limits = gc.get_count(), gc.get_threshold()
        if counts[0] <= limits[0]:
            return
        if counts[2] > limits[2] and len(gc.get_objects(2)) - self.long_lived > self.long_lived // 4:
            gc.collect(2)
            self.long_lived = len(gc.get_objects(2))
        else:
            gc.collect(1 if counts[1] > limits[1] else 0)


def collect_garbage_on_gui_thread(owner) -> None:
    """While the QObject `owner` (a main window) lives, no other thread starts a garbage collection.
    Call on the GUI thread; several owners may overlap."""
    from PySide6.QtCore import QTimer

    collector = _GuiThreadCollector()
    timer = QTimer(owner)
    timer.setInterval(_GC_TICK_MS)
    timer.timeout.connect(lambda: collector.tick())     # a bound method of a plain object is held weakly
    timer.start()
    key = id(owner)
    _gc_owners.add(key)
    gc.disable()

    def release(*_):
        _gc_owners.discard(key)
        if not _gc_owners:
            gc.enable()

    owner.destroyed.connect(release)
