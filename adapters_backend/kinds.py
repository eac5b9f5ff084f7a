"""The kind of a value read from a file or the network (JSON), checked before it is used: in Python
`True` is an int, and a float may be infinite or NaN, so "is it a count" and "is it a number" are
each one line that was written again wherever such data is read."""
from __future__ import annotations

import math


def is_count(value: object) -> bool:
    """A whole number that is not a bool (negative ones included: the caller bounds it)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["is_count", "is_number"]
