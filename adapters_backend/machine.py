"""What this computer has, for choices made for the user (how much of a model fits its memory)."""
from __future__ import annotations

import ctypes
import os
import sys

MEMORY_SHARE = 0.85                    # more than this share of the computer's memory: a model crawls


def total_memory() -> int | None:
    """The computer's physical memory in bytes; None where it cannot be read."""
    if sys.platform == "win32":
        class Status(ctypes.Structure):
            _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong), ("total", ctypes.c_ulonglong),
                        ("avail", ctypes.c_ulonglong), ("page_total", ctypes.c_ulonglong),
                        ("page_avail", ctypes.c_ulonglong), ("virtual_total", ctypes.c_ulonglong),
                        ("virtual_avail", ctypes.c_ulonglong), ("extended", ctypes.c_ulonglong)]
        status = Status(length=ctypes.sizeof(Status))
        return int(status.total) if ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)) else None
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def fits_memory(size: int, total: int | None) -> bool:
    """Whether `size` bytes of model (weights and cache) leave a computer with `total` bytes of memory
    (total_memory()) room to work; True when its memory is unknown (None)."""
    return not total or size <= MEMORY_SHARE * total


def spare_memory(used: int, total: int | None) -> int | None:
    """Bytes of `total` (a computer's or a GPU's memory) left within its working share once `used` bytes
    are taken (a loaded model); negative when they are past it, None when the memory is unknown."""
    return None if not total else int(MEMORY_SHARE * total) - used
