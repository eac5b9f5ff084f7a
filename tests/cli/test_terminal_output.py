"""The command line prints names from outside as text, never as terminal commands (cli/terminal.py):
an adapter folder whose name holds escape sequences (a window title, a cleared screen, text put on the
clipboard through OSC 52) is listed, inspected and refused with those sequences written as escapes,
and `--json` still gives back the name exactly."""
from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapters_backend.cli.main import main
from adapters_backend.cli.terminal import _STDERR_TABLE, _STDOUT_TABLE, InertText

REPO = Path(__file__).resolve().parents[2]
SHOUT = REPO / "adapters_backend" / "demo" / "assets" / "adapters" / "shout-peft"
EVIL = "evil\x1b]0;PWNED\x07\x1b]52;c;cHduZWQ=\x07\x1b[2J\x9b31m\rok"
CONTROLS = {*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)}


def controls_in(text: str, allowed=(0x09, 0x0A)) -> set[str]:
    return {hex(ord(c)) for c in text if ord(c) in CONTROLS and ord(c) not in allowed}


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("LORADECK_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LORADECK_DATA_DIR", str(tmp_path / "data"))


def test_inert_text_escapes_exactly_the_control_characters():
    every = "".join(map(chr, range(0x00, 0x120)))
    for table, kept in ((_STDOUT_TABLE, {0x09, 0x0A}), (_STDERR_TABLE, {0x09, 0x0A, 0x0D})):
        out = io.StringIO()
        assert InertText(out, table).write(every) == len(every)
        text = out.getvalue()
        assert controls_in(text, allowed=kept) == set()
        assert all(chr(c) in text for c in kept)
        assert text == "".join(chr(c) if c in kept or c not in CONTROLS else f"\\u{c:04x}" for c in range(0x120))


def test_names_with_escape_sequences_are_printed_inert(tmp_path, capsys):
    folder = tmp_path / EVIL.replace("\r", "")          # (a carriage return is refused as a file name part)
    shutil.copytree(SHOUT, folder)
    assert main(["install", str(folder)]) == 0
    assert main(["list"]) == 0
    assert main(["inspect", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert "evil" in out and "\\u001b]52;c;cHduZWQ=\\u0007" in out
    assert controls_in(out) == set() and controls_in(err, allowed=(0x09, 0x0A, 0x0D)) == set()

    assert main(["list", "--json"]) == 0                # JSON keeps the name exactly
    out, _err = capsys.readouterr()
    entries = json.loads(out)
    assert [e["name"] for e in entries] == [EVIL.replace("\r", "")]

    assert main(["rename", entries[0]["id"], EVIL]) == 0          # a label may hold anything
    assert main(["list"]) == 0
    out, _err = capsys.readouterr()
    assert "\\u000dok" in out and controls_in(out) == set()       # a carriage return cannot hide the line


def test_an_error_naming_a_hostile_file_is_printed_inert(tmp_path, capsys):
    bad = tmp_path / f"{EVIL.replace(chr(13), '')}.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert main(["inspect", str(bad)]) == 2
    _out, err = capsys.readouterr()
    assert err.startswith("loradeck: error: ") and "\\u001b]0;PWNED" in err
    assert controls_in(err, allowed=(0x09, 0x0A, 0x0D)) == set()


def test_the_installed_command_writes_no_control_bytes(tmp_path):
    """As a user runs it, in its own process: the bytes on stdout carry no ESC, BEL or C1 code."""
    folder = tmp_path / EVIL.replace("\r", "")
    shutil.copytree(SHOUT, folder)
    env = {"LORADECK_DATA_DIR": str(tmp_path / "data"), "LORADECK_CACHE_DIR": str(tmp_path / "cache"),
           "PATH": "/usr/bin:/bin", "PYTHONIOENCODING": "utf-8"}
    for argv in (["install", str(folder)], ["list"]):
        done = subprocess.run([sys.executable, "-m", "adapters_backend.cli", *argv], cwd=REPO, env=env,
                              capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert b"\x1b" not in done.stdout and b"\x07" not in done.stdout and b"\xc2\x9b" not in done.stdout
        assert b"\\u001b]0;PWNED" in done.stdout
