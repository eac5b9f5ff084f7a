"""Open a folder in the system's file manager, and learn when that did not work.

Qt's QDesktopServices.openUrl only says whether `xdg-open` could be started, not whether it found a
program for folders (on a desktop without a file manager it exits with status 3 and nothing opens).
So the opener is run here and its exit status read: the caller can say so and offer the path instead.
Blocking (it waits a few seconds for the opener): run it in a JobRunner job.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

WAIT_S = 8.0          # an opener still running by then has opened a window (some stay until it closes)

# xdg-open's exit statuses (xdg-utils): what each means for the user.
XDG_OPEN_STATUS = {1: "the request was not understood", 2: "the folder does not exist",
                   3: "no file manager is registered for folders", 4: "the file manager failed to open it"}


def opener() -> list[str] | None:
    """The command that opens a folder on this system (None on Windows, where os.startfile does)."""
    if sys.platform == "win32":
        return None
    if sys.platform == "darwin":
        # Reveal it in Finder: `open` on a folder that is a bundle (X.app, X.prefPane …) would launch or
        # install it, and an adapter's folder keeps the name it came with.
        return ["open", "-R"]
    return ["xdg-open"]


def open_folder(folder: str, ctx=None) -> str | None:
    """Open `folder` in the file manager; None when it worked, else why not (a sentence for the user)."""
    if sys.platform == "win32":
        try:
            os.startfile(folder)  # opens Explorer on a folder
        except OSError as exc:
            return f"Windows could not open it ({exc})"
        return None
    cmd = opener()
    program = shutil.which(cmd[0])
    if program is None:
        return f"no program to open folders is installed ({cmd[0]} was not found)"
    try:
        proc = subprocess.Popen([program, *cmd[1:], folder], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError as exc:
        return f"{cmd[0]} could not be started ({exc})"
    try:
        status = proc.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        threading.Thread(target=proc.wait, name="file-manager-reaper", daemon=True).start()   # no zombie later
        return None                                 # still running: its window is open
    if status == 0:
        return None
    return XDG_OPEN_STATUS.get(status, f"{cmd[0]} failed (status {status})") if cmd[0] == "xdg-open" \
        else f"{cmd[0]} failed (status {status})"


def home_relative(path) -> str:
    """`/home/me/.local/share/x` → `~/.local/share/x`, as file managers show it (other paths as they are)."""
    from pathlib import Path
    p, home = Path(path), Path.home()
    try:
        return str(Path("~") / p.relative_to(home))
    except ValueError:
        return str(p)
