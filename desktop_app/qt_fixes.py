"""Work-arounds for bugs in the Qt binding that would otherwise crash the app.

PySide6 6.12.0 on Python 3.11 drops one reference to `True` every time a signal calls a Python slot
(6.11.3 does not; Python ≥ 3.12 is safe because True/False are immortal there). After enough
signals — a few thousand streamed tokens — True's count reaches zero and the interpreter aborts
("bool_dealloc: deallocating True or False"). We detect the leak with a probe and, only then, give
True and False a huge reference count, which makes them as immortal as Python 3.12 does.
"""
from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_PROBE_EMITS = 32
_HEADROOM = 1 << 40          # ~10^12 signal deliveries before it could matter
_applied = False


def signal_delivery_leaks_bool() -> bool:
    """True if delivering a signal to a Python slot loses a reference to True (the PySide6 bug)."""
    from PySide6.QtCore import QObject, Signal  # noqa: PLC0415

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


def _add_refs(obj: object, n: int) -> None:
    # CPython stores the reference count in the first field of every object (Py_ssize_t ob_refcnt).
    ctypes.c_ssize_t.from_address(id(obj)).value += n


def apply() -> bool:
    """Install the work-arounds this Python/PySide needs; returns whether the bool fix was applied."""
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if signal_delivery_leaks_bool():
        import PySide6  # noqa: PLC0415
        log.info("PySide6 %s leaks references to True on signal delivery; applying the work-around "
                    "(install PySide6 != 6.12.0 to avoid it)", PySide6.__version__)
        _add_refs(True, _HEADROOM)
        _add_refs(False, _HEADROOM)
        _applied = True
    return _applied
