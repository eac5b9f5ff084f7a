"""Sizes, rates and times as people read them, written one way everywhere (CLI, app, server).

Decimal units (1 MB = 10⁶ bytes), as the Hugging Face Hub and most file managers show file sizes.
"""
from __future__ import annotations

_UNITS = ("B", "kB", "MB", "GB", "TB")


def format_bytes(n: float | None) -> str:
    """1234567 → "1.2 MB"; "" for a missing or negative size."""
    if not isinstance(n, (int, float)) or isinstance(n, bool) or n < 0:
        return ""
    for unit in _UNITS:
        if n < 1000 or unit == _UNITS[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def format_count(n: int) -> str:
    """1536065856 → "1.54 billion" (parameters, tokens)."""
    for unit, size in (("billion", 1e9), ("million", 1e6), ("thousand", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return str(n)


def format_seconds(s: float) -> str:
    """75 → "1 min 15 s"; 4000 → "1 h 7 min"."""
    s = max(0, int(round(s)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def transfer_text(done: float, total: float, rate: float | None) -> str:
    """"12.0 MB of 48.0 MB · 3.0 MB/s · 12 s left" (the parts that are known)."""
    parts = [format_bytes(done) + (f" of {format_bytes(total)}" if total else "")]
    if rate:
        parts.append(f"{format_bytes(rate)}/s")
        if total and rate > 0:
            parts.append(f"{format_seconds(max(total - done, 0) / rate)} left")
    return " · ".join(parts)
