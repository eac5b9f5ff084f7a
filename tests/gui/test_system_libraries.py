"""Qt's xcb plugin and its system libraries (desktop_app.system_libraries): with one library really
missing — hidden in a private mount namespace, the plugin and everything else untouched — `loradeck`
must name it and the packages to install, exit with status 2, and print none of Qt's abort text."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desktop_app import system_libraries

HIDDEN = "libxcb-cursor.so.0"          # the library desktops most often lack (issue #19)
QT_ABORT_TEXT = ("qt.qpa.plugin", "This application failed to start", "could not connect to display")


def _library_folder(plugin: Path, soname: str) -> Path | None:
    """The folder the dynamic loader takes `soname` from for this plugin (None if it is not found)."""
    ldd = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    found = re.search(rf"^\s*{re.escape(soname)} => (/\S+)", ldd, re.MULTILINE)
    return Path(os.path.realpath(found.group(1))).parent if found else None


@pytest.fixture
def without_library(tmp_path):
    """A command prefix that runs a program with HIDDEN absent from this machine, as if its package
    were not installed: in a private mount namespace an overlay on its folder deletes the files."""
    plugin = system_libraries.xcb_plugin()
    if not sys.platform.startswith("linux") or plugin is None or shutil.which("unshare") is None:
        pytest.skip("needs Linux, Qt's xcb plugin and unshare(1)")
    folder = _library_folder(plugin, HIDDEN)
    if folder is None:               # not installed here at all: already the situation under test
        return []
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    script = ('mount -t overlay hide -o "lowerdir=$1,upperdir=$2,workdir=$3" "$1" && rm -f "$1"/$4* '
              '&& shift 4 && exec "$@"')
    prefix = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        prefix += ["--user", "--map-root-user"]
    prefix += ["sh", "-c", script, "sh", str(folder), str(upper), str(work), HIDDEN.split(".so")[0] + ".so"]
    probe = subprocess.run([*prefix, "ldd", str(plugin)], capture_output=True, text=True)
    if probe.returncode != 0 or f"{HIDDEN} => not found" not in probe.stdout:
        pytest.skip(f"cannot hide {HIDDEN} in a mount namespace here: {probe.stderr.strip()[-300:]}")
    return prefix


def _desktop_env(tmp_path, platform: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "WAYLAND", "XDG_SESSION"))}
    env.update(DISPLAY=":77", LORADECK_DATA_DIR=str(tmp_path / "data"), HOME=str(tmp_path))
    if platform:
        env["QT_QPA_PLATFORM"] = platform
    return env


def test_a_missing_xcb_library_is_named_with_its_packages_and_exit_2(without_library, tmp_path):
    loradeck = Path(sys.executable).with_name("loradeck")
    out = subprocess.run([*without_library, str(loradeck)], env=_desktop_env(tmp_path, None),
                         capture_output=True, text=True, timeout=120)
    said = out.stdout + out.stderr
    assert out.returncode == 2, said
    assert HIDDEN in said and "sudo apt install libxcb-cursor0" in said and "sudo dnf install xcb-util-cursor" in said
    assert not any(text in said for text in QT_ABORT_TEXT), said


def test_platforms_that_do_not_need_xcb_start_without_it(without_library, tmp_path):
    script = "from desktop_app.app import create_app; app = create_app(['loradeck']); print(app.platformName())"
    out = subprocess.run([*without_library, sys.executable, "-c", script], env=_desktop_env(tmp_path, "offscreen"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "offscreen", out.stdout + out.stderr


def test_a_plugin_whose_libraries_load_passes():
    plugin = system_libraries.xcb_plugin()
    if plugin is None:
        pytest.skip("this Qt has no xcb plugin")
    offscreen = plugin.with_name("libqoffscreen.so")
    assert system_libraries.missing_libraries(offscreen) == []


def test_the_platform_qt_picks_first():
    pick = system_libraries.qt_platform
    assert pick(["loradeck"], {}) == "xcb"
    assert pick(["loradeck"], {"DISPLAY": ":0"}) == "xcb"
    assert pick(["loradeck"], {"XDG_SESSION_TYPE": "wayland", "DISPLAY": ":0"}) == "wayland"
    assert pick(["loradeck"], {"WAYLAND_DISPLAY": "wayland-0"}) == "wayland"
    assert pick(["loradeck"], {"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}) == "offscreen"
    assert pick(["loradeck"], {"QT_QPA_PLATFORM": "xcb:nograb;wayland", "WAYLAND_DISPLAY": "w"}) == "xcb"
    assert pick(["loradeck", "-platform", "minimal"], {"QT_QPA_PLATFORM": "xcb"}) == "minimal"


def test_advice_names_each_package_once_and_unknown_libraries_plainly():
    text = system_libraries.advice(["libxcb-randr.so.0", "libxcb-shm.so.0", "libfoo.so.3"])
    assert "sudo apt install libxcb-randr0 libxcb-shm0\n" in text
    assert "sudo dnf install libxcb\n" in text           # both come from Fedora's libxcb
    assert "libfoo.so.3" in text and "apt-file search" in text


def test_the_docs_install_lines_are_the_same_everywhere_and_name_real_packages():
    repo = Path(__file__).resolve().parents[2]
    lines = {}
    for doc in ("README.md", "docs/getting-started.md", "docs/troubleshooting.md"):
        text = (repo / doc).read_text(encoding="utf-8")
        lines[doc] = (re.search(r"^- Debian/Ubuntu: `sudo apt install ([^`]+)`$", text, re.MULTILINE).group(1),
                      re.search(r"^- Fedora: `sudo dnf install ([^`]+)`$", text, re.MULTILINE).group(1))
    assert len(set(lines.values())) == 1, lines
    debian, fedora = next(iter(lines.values()))
    assert set(debian.split()) <= {d for d, _f in system_libraries.PACKAGES.values()}
    assert set(fedora.split()) <= {f for _d, f in system_libraries.PACKAGES.values()}
    assert "libxcb-cursor0" in debian.split() and "xcb-util-cursor" in fedora.split()
