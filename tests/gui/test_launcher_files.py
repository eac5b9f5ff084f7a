"""`loradeck FILE…` in a development install: the app opens with the files handed to it as if dropped
on the window (as the installed app does for a file manager's "Open with"), while `loradeck COMMAND`
stays the command line even where a folder of that name exists."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHOUT = REPO / "adapters_backend" / "demo" / "assets" / "adapters" / "shout-peft"


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"),
               XDG_CONFIG_HOME=str(tmp_path / "config"), LORADECK_DATA_DIR=str(tmp_path / "data"),
               LORADECK_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("LORADECK_SELF_TEST", None)
    return env


def _launch(args, tmp_path, **kw):
    code = "import sys\nfrom desktop_app.launcher import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=_env(tmp_path), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _my_shout(tmp_path: Path) -> Path:
    """The demo's shout adapter as a new one (the same content would be taken for the demo's own)."""
    adapter = tmp_path / "my-shout"
    shutil.copytree(SHOUT, adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["lora_alpha"] = 15
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    return adapter


def test_loradeck_folder_opens_the_app_and_installs_it(tmp_path):
    adapter = _my_shout(tmp_path)
    index = tmp_path / "data" / "library" / "index.json"
    proc = _launch([adapter.name], tmp_path)
    try:
        _wait(lambda: "my-shout" in _library_names(index) or proc.poll() is not None, 90, "the install")
        assert proc.poll() is None, proc.communicate()[0]
    finally:
        _stop(proc)


def test_a_command_name_stays_a_command_even_beside_a_folder_of_that_name(tmp_path):
    (tmp_path / "plugins").mkdir()
    proc = _launch(["plugins"], tmp_path)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "peft" in out and "formats" in out


def test_launcher_choice():
    from desktop_app.launcher import opened_files
    assert opened_files([str(SHOUT)]) == [SHOUT]
    assert opened_files(["inspect", str(SHOUT)]) is None
    assert opened_files(["--help"]) is None and opened_files([]) is None


def _library_names(index: Path) -> list:
    try:
        raw = json.loads(index.read_text())
    except (OSError, ValueError):
        return []
    entries = raw.get("entries", raw) if isinstance(raw, dict) else raw
    return [e.get("name") for e in (entries.values() if isinstance(entries, dict) else entries)]


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.2)


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def test_a_second_start_hands_its_files_to_the_app_already_open(tmp_path, qapp):
    """Opening an adapter while LoRA Deck runs (a file manager's "Open with", a second double-click) goes
    to the running app, which installs it; the second start ends at once instead of loading the model a
    second time. After the app is killed, the next start takes over its place."""
    from adapters_backend.library.lock import held_by_a_live_process
    from desktop_app.single_instance import LOCK_NAME, hand_over, socket_name

    adapter = _my_shout(tmp_path)
    data = tmp_path / "data"
    lock, index = data / LOCK_NAME, data / "library" / "index.json"

    first = _launch([], tmp_path)
    try:
        _wait(lambda: held_by_a_live_process(lock) or first.poll() is not None, 90, "the app's lock")
        assert first.poll() is None, first.communicate()[0]
        second = _launch([adapter.name], tmp_path)            # a relative path, from the second's folder
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 0 and "already open" in out and "1 file" in out, out
        _wait(lambda: "my-shout" in _library_names(index), 90, "the running app to install the adapter")
        third = _launch([], tmp_path)                          # no files: the open window comes forward
        out, _ = third.communicate(timeout=60)
        assert third.returncode == 0 and "brought it to the front" in out, out
        assert first.poll() is None
    finally:
        first.kill()                                           # a crash: its lock goes, its socket file stays
        first.communicate()

    after = _launch([], tmp_path)
    try:
        _wait(lambda: held_by_a_live_process(lock) or after.poll() is not None, 90, "the next app's lock")
        assert after.poll() is None, after.communicate()[0]
        _wait(lambda: hand_over(socket_name(data), []), 30, "the next app to answer")
    finally:
        _stop(after)
