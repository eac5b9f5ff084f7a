"""Python child processes that trust nothing around them: the working folder, PYTHON* variables, the
folder of the file they work on. For work on untrusted input that must not touch this process's memory
(a pickle, a model's chat template)."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def isolated_python(code: str, *args: str, untrusted: tuple[Path, ...] = ()) -> list[str]:
    """The command line of a Python child that imports nothing from the working folder, from the
    `untrusted` folders (the adapter's) or from PYTHONPATH: `python -I`, with sys.path set to this
    process's own absolute entries minus those folders (for a `pip install --user` torch, which -I
    leaves out, and the packaged app's folders)."""
    cwd = os.path.realpath(os.getcwd())        # what "" and "." on sys.path mean
    bad = [os.path.realpath(p) for p in untrusted]

    def trusted(entry: str) -> bool:
        if not entry or not os.path.isabs(entry):
            return False
        real = os.path.realpath(entry)
        return real != cwd and not any(real == b or real.startswith(b.rstrip(os.sep) + os.sep) for b in bad)

    paths = [p for p in sys.path if trusted(p)]
    boot = f"import sys; sys.path[:] = {paths!r}\n"
    return [sys.executable, "-I", "-c", boot + code, *args]


def isolated_env() -> dict[str, str]:
    """The environment without Python's own variables (PYTHONPATH, PYTHONSTARTUP, PYTHONHOME, …),
    which -I ignores too."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("PYTHON")}
