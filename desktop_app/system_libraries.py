"""Before the QApplication exists on Linux: can Qt's X11 platform plugin (xcb) load?

PySide6's wheels bring Qt, but not the system libraries its xcb plugin links to (libxcb-cursor0 is
the one a desktop most often lacks). Without them Qt prints "Could not load the Qt platform plugin
"xcb" … no Qt platform plugin could be initialized" and aborts, which does not say what to install.
So when Qt is going to start on xcb, the plugin is loaded here first: when that works it costs
nothing (Qt finds the file already loaded a moment later); when it does not, the missing libraries
and the Debian/Ubuntu and Fedora packages holding them are printed, and the app exits with status 2.
"""
from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

EXIT_STATUS = 2

# The non-Qt libraries Qt's xcb plugin and the Qt libraries it loads link to (readelf -d), with the
# packages that install them: (Debian/Ubuntu, Fedora).
PACKAGES = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libz.so.1": ("zlib1g", "zlib"),
    "libzstd.so.1": ("libzstd1", "libzstd"),
}
_NOT_FOUND = re.compile(r"^\s*(\S+) => not found", re.MULTILINE)
_CANNOT_OPEN = re.compile(r"(\S+?\.so[.\d]*): cannot open shared object file")


def _first_platform(spec: str) -> str:
    # "xcb;wayland" is a list Qt tries in order; "xcb:opt=value" carries plugin options.
    return spec.split(";")[0].split(":")[0].strip()


def qt_platform(argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """The platform plugin Qt 6 tries first: `-platform NAME`, else QT_QPA_PLATFORM, else Wayland in a
    Wayland session and xcb otherwise."""
    args = list(argv[1:])
    for flag, value in zip(args, args[1:]):
        if flag in ("-platform", "--platform"):
            return _first_platform(value)
    if environ.get("QT_QPA_PLATFORM"):
        return _first_platform(environ["QT_QPA_PLATFORM"])
    if environ.get("WAYLAND_DISPLAY") or environ.get("XDG_SESSION_TYPE") == "wayland":
        return "wayland"
    return "xcb"


def xcb_plugin() -> Path | None:
    """Qt's xcb platform plugin file, where this Qt looks for it (None if it has none)."""
    from PySide6.QtCore import QLibraryInfo  # QtCore only: loads no GUI library

    folder = os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH") or \
        os.path.join(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath), "platforms")
    plugin = Path(folder) / "libqxcb.so"
    return plugin if plugin.is_file() else None


def missing_libraries(plugin: Path) -> list[str]:
    """[] when the plugin loads (it then stays loaded, as Qt would leave it); else the libraries the
    dynamic loader cannot find, all of them if `ldd` can list them, or the loader's own message."""
    try:
        ctypes.CDLL(str(plugin), mode=os.RTLD_LAZY)
        return []
    except OSError as exc:
        error = str(exc)
    try:
        out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    missing = list(dict.fromkeys(_NOT_FOUND.findall(out)))
    if not missing:
        match = _CANNOT_OPEN.search(error)
        missing = [Path(match.group(1)).name] if match else [error]
    return missing


def advice(missing: Sequence[str]) -> str:
    """What to tell the user: the libraries, and the packages to install on Debian/Ubuntu and Fedora."""
    known = [PACKAGES[m] for m in missing if m in PACKAGES]
    unknown = [m for m in missing if m not in PACKAGES and re.fullmatch(r"\S+\.so[.\d]*", m)]
    lines = ["LoRA Deck cannot open its window: Qt's X11 platform plugin (xcb) needs system libraries",
             "that cannot be loaded:", *(f"    {m}" for m in missing)]
    if known:
        debian = " ".join(dict.fromkeys(k[0] for k in known))
        fedora = " ".join(dict.fromkeys(k[1] for k in known))
        lines += ["Install them, then start LoRA Deck again:",
                  f"    Debian/Ubuntu:  sudo apt install {debian}",
                  f"    Fedora:         sudo dnf install {fedora}"]
    if unknown:
        lines += ["Find the package that holds each of the others with your distribution's tools",
                  "(Debian/Ubuntu: apt-file search NAME; Fedora: dnf provides '*/NAME')."]
    lines += ["On a Wayland desktop, QT_QPA_PLATFORM=wayland starts LoRA Deck without X11."]
    return "\n".join(lines)


def exit_unless_qt_can_start(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> None:
    """On Linux, when Qt will start on xcb: return if its plugin loads, else print `advice` and exit 2."""
    if not sys.platform.startswith("linux"):
        return
    if qt_platform(sys.argv if argv is None else argv, os.environ if environ is None else environ) != "xcb":
        return
    plugin = xcb_plugin()
    missing = missing_libraries(plugin) if plugin is not None else []
    if missing:
        print(advice(missing), file=sys.stderr, flush=True)
        raise SystemExit(EXIT_STATUS)
