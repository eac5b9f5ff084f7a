"""Reading byte ranges of big files without a memory map (so a model copied tensor by tensor never
becomes resident in this process), on every platform (os.pread does not exist on Windows)."""
from __future__ import annotations


def read_exactly(f, offset: int, n: int) -> bytearray:
    """`n` bytes of the open binary file `f` from `offset`; EOFError when the file ends first."""
    f.seek(offset)
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:                          # one read() returns at most ~2 GB on Linux
        k = f.readinto(view[got:])
        if not k:
            raise EOFError(f"the file ends at byte {offset + got}, {n - got} bytes short")
        got += k
    return buf
